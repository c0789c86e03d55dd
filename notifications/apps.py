from django.apps import AppConfig
from django.db.models.signals import post_migrate


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from notifications.planning.categories import ensure_configured_categories

        # post_migrate also runs after a test flush, so configured categories always exist.
        post_migrate.connect(ensure_configured_categories, sender=self)
