from django.apps import AppConfig


class ChannelConfig(AppConfig):
    name = "channels_delivery.channels.inapp"
    label = "channel_inapp"
    default_auto_field = "django.db.models.BigAutoField"
