from django.apps import AppConfig


class ChannelConfig(AppConfig):
    name = "channels_delivery.channels.webhook"
    label = "channel_webhook"
    default_auto_field = "django.db.models.BigAutoField"
