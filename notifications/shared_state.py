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
