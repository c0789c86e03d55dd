from django.apps import AppConfig


class ChannelConfig(AppConfig):
    name = "channels_delivery.channels.email"
    label = "channel_email"
    default_auto_field = "django.db.models.BigAutoField"
