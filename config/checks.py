"""Settings that must not reach production, refused by a Django system check.

`manage.py check`, `migrate` and `runserver` run the check themselves; the web (ASGI/WSGI) and
Celery processes call refuse_insecure_settings() as they start, since nothing runs checks there.
"""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

MIN_SECRET_KEY_LENGTH = 32


@checks.register(checks.Tags.security)
def secret_key_check(app_configs=None, **kwargs):
    """With DEBUG off, the key must be set, not the development fallback, and long enough: anyone
    who knows it signs unsubscribe links (and sessions) for every user."""
    if settings.DEBUG:
        return []
    key = settings.SECRET_KEY or ""
    if key == settings.INSECURE_SECRET_KEY:
        problem = "DJANGO_SECRET_KEY is not set: the development fallback key is public."
    elif len(set(key)) < 5 or len(key) < MIN_SECRET_KEY_LENGTH:
        problem = f"DJANGO_SECRET_KEY is too short or too simple (at least {MIN_SECRET_KEY_LENGTH} varied characters)."
    else:
        return []
    return [checks.Error(problem, hint="Set DJANGO_SECRET_KEY to a long random value, "
                         "e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'.", id="notify.E001")]


def refuse_insecure_settings():
    errors = [error for error in secret_key_check() if error.is_serious()]
    if errors:
        raise ImproperlyConfigured("; ".join(error.msg for error in errors))
