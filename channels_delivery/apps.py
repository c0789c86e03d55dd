from django.apps import AppConfig
from django.core import checks

from channels_delivery.engine.checks import check_retry_policies


class ChannelsDeliveryConfig(AppConfig):
    name = "channels_delivery"
    verbose_name = "Channel delivery"

    def ready(self):
        checks.register(check_retry_policies, checks.Tags.compatibility)
