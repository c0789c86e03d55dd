from django.apps import AppConfig


class ChannelConfig(AppConfig):
    name = "channels_delivery.channels.slack"
    label = "channel_slack"
    default_auto_field = "django.db.models.BigAutoField"
