"""ASGI entry point: HTTP goes to Django; WebSocket routes are added by the realtime module."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from config.checks import refuse_insecure_settings  # noqa: E402

refuse_insecure_settings()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)

application = ProtocolTypeRouter({"http": django_asgi_app})
