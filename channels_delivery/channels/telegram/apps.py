from django.apps import AppConfig


class ChannelConfig(AppConfig):
    name = "channels_delivery.channels.telegram"
    label = "channel_telegram"
    default_auto_field = "django.db.models.BigAutoField"
