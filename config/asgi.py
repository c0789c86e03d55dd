"""ASGI entry point: HTTP goes to Django, `/ws/notifications/` to the realtime consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from config.checks import refuse_insecure_settings  # noqa: E402

refuse_insecure_settings()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up first)

from notifications.realtime.auth import WebSocketAuthStack  # noqa: E402
from notifications.realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": WebSocketAuthStack(URLRouter(websocket_urlpatterns))}
)
