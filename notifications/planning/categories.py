from django.conf import settings

from notifications.models import Category


def ensure_configured_categories(**kwargs):
    for key, spec in settings.NOTIFY_CATEGORIES.items():
        Category.objects.get_or_create(
            key=key, defaults={
                "name": spec.get("name", key),
                "critical": spec.get("critical", False),
                "sensitive": spec.get("sensitive", False),
            },
        )
