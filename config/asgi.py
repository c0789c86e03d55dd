"""ASGI entry point: HTTP goes to Django, `/ws/notifications/` to the realtime consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django's persistent connections leak under ASGI: every HTTP request and every thread-sensitive
# context runs its database work in a thread of its own, and that thread's open connection stays
# open until the collector frees it (89 of Postgres' 100 held by one test server). As Django's
# docs advise, this process pools them instead (psycopg's pool, as the web tier does): a
# connection goes back to the pool when its call or request ends.
os.environ.setdefault("DATABASE_POOL_MAX_SIZE", "8")
django_asgi_app = get_asgi_application()

from config.checks import refuse_insecure_settings  # noqa: E402

refuse_insecure_settings()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up first)

from notifications.realtime.auth import WebSocketAuthStack  # noqa: E402
from notifications.realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": WebSocketAuthStack(URLRouter(websocket_urlpatterns))}
)

# The realtime process holds thousands of long-lived connections, hundreds of objects each, and
# Python's collector rescans all of them in every full collection, one of which it considers after
# every 100 young collections of 700 allocations: over a third of the process's CPU while 10,000
# clients reconnect (py-spy --native; about a sixth with the settings below). What startup
# allocated is frozen out of its sight, and the young generation is collected every
# NOTIFY_WS_GC_THRESHOLD allocations (at 50,000: 0.82x the CPU per handshake in bench.realtime
# connections, for about 30 MiB more at 10,000 connections). At 200,000 (the default) a
# 10,000-client reconnect runs 8 young collections and no middle one, where 50,000 ran 33 young and
# 2 middle ones, the middle ones 0.4 s of CPU (probed with gc.callbacks); about 15 MiB more again.
from django.conf import settings  # noqa: E402

from config.collector import freeze_startup  # noqa: E402

freeze_startup(settings.NOTIFY_WS_GC_THRESHOLD)
