from django.apps import AppConfig


class ChannelConfig(AppConfig):
    name = "channels_delivery.channels.sms"
    label = "channel_sms"
    default_auto_field = "django.db.models.BigAutoField"
