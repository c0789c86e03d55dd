from django.apps import AppConfig
from django.core import checks


class ChannelsDeliveryConfig(AppConfig):
    name = "channels_delivery"
    verbose_name = "Channel delivery"

    def ready(self):
        checks.register(check_retry_policies, checks.Tags.compatibility)


def check_retry_policies(app_configs=None, **kwargs):
    """A misspelt policy name or shape stops the process at start, not at the first retry."""
    from django.conf import settings

    from .backoff import named

    errors = []
    for name in settings.NOTIFY_RETRY_POLICIES:
        try:
            named(name)
        except (TypeError, ValueError) as error:
            errors.append(checks.Error(str(error), id="channels_delivery.E001"))
    for setting in ("NOTIFY_CHANNEL_RETRY_POLICY", "NOTIFY_CATEGORY_RETRY_POLICY", "NOTIFY_PRIORITY_RETRY_POLICY"):
        for key, name in getattr(settings, setting).items():
            if name and name not in settings.NOTIFY_RETRY_POLICIES:
                errors.append(checks.Error(f"{setting}: {key} names unknown retry policy {name!r}",
                                           id="channels_delivery.E002"))
    return errors
