from django.apps import AppConfig


class ChannelConfig(AppConfig):
    name = "channels_delivery.channels.push"
    label = "channel_push"
    default_auto_field = "django.db.models.BigAutoField"
