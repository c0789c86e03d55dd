from django.apps import AppConfig
from django.db.models.signals import post_migrate


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        import config.checks  # noqa: F401  (registers the insecure-settings system check)

        from django.core import checks

        from notifications.encryption import check_encryption_keys
        from notifications.planning.categories import ensure_configured_categories

        checks.register(check_encryption_keys, checks.Tags.security, deploy=True)

        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.db.models.signals import m2m_changed

        from notifications.models import api_clients_cache

        # A cached API client holds its owner, and the owner's permissions with it.
        User = get_user_model()
        for relation in (User.user_permissions.through, User.groups.through, Group.permissions.through):
            m2m_changed.connect(api_clients_cache.forget, sender=relation, weak=False)

        # post_migrate also runs after a test flush, so configured categories always exist.
        post_migrate.connect(ensure_configured_categories, sender=self)

        from celery import signals as celery_signals

        from notifications.ops import correlation, logs, metrics

        # Delivery counters follow the engine's signals, in whichever process does the work.
        metrics.connect()
        # The request id rides along every Celery message (publish and task hooks).
        correlation.connect()
        # Workers and beat log like the web process; a worker may serve its machine's metrics.
        celery_signals.setup_logging.connect(logs.configure_from_settings, weak=False, dispatch_uid="notify-logging")
        celery_signals.worker_ready.connect(metrics.serve_worker_metrics, weak=False, dispatch_uid="notify-exporter")
