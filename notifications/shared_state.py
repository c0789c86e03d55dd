"""The Redis that every process shares for circuit, rate-limit and dispatch-coalescing state
(rebuildable, never the truth: Postgres is)."""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url):
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)


def client():
    return _client(settings.REDIS_URL)


# Each ASGI process's relay keeps its open WebSocket connections here (one key per relay, renewed
# with NOTIFY_WS_RELAY_RENEW and expiring after a few missed renewals), read by /metrics.
WS_CONNECTIONS_PREFIX = "notify:ws:connections:"


def ws_connections():
    """{relay: open connections} of the live ASGI processes."""
    store = client()
    keys = list(store.scan_iter(f"{WS_CONNECTIONS_PREFIX}*"))
    counts = store.mget(keys) if keys else []
    return {key.decode()[len(WS_CONNECTIONS_PREFIX):]: int(count) for key, count in zip(keys, counts) if count is not None}
