from django.apps import AppConfig


class ChannelsDeliveryConfig(AppConfig):
    name = "channels_delivery"
    verbose_name = "Channel delivery"
