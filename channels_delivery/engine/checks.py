"""System checks of the engine's settings: a misspelt retry policy stops the process at start
(`manage.py check`, migrate, runserver), not at the first retry."""

from django.conf import settings
from django.core import checks

from channels_delivery.engine.backoff import named


def check_retry_policies(app_configs=None, **kwargs):
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
    if settings.NOTIFY_STATUS_EVENT_RETRY_POLICY not in settings.NOTIFY_RETRY_POLICIES:
        errors.append(checks.Error(
            f"NOTIFY_STATUS_EVENT_RETRY_POLICY names unknown retry policy {settings.NOTIFY_STATUS_EVENT_RETRY_POLICY!r}",
            id="channels_delivery.E002"))
    return errors
