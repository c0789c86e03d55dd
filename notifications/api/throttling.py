"""Throttling per API client (or per user for end users): a fixed window counted in Redis, shared
by every web process.

One round trip per request: INCR of the window's key and EXPIRE (only when the key is new) in
one MULTI, so concurrent requests of one client on several processes never lose a count (DRF's
SimpleRateThrottle reads a list of timestamps, appends and writes it back: two processes racing
both pass). A fixed window lets at most twice the rate through across a window edge, which is
fine for protecting the service. Redis unreachable: requests pass (throttling is not worth an
outage) and a warning is logged.
"""

import logging
import time
from functools import lru_cache

import redis
from django.conf import settings
from rest_framework.throttling import BaseThrottle

from notifications.api.auth import api_client_of

logger = logging.getLogger(__name__)
DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@lru_cache(maxsize=4)
def connection(url):
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def parse_rate(rate):
    """"600/minute" -> (600, 60)."""
    count, _, period = rate.partition("/")
    return int(count), DURATIONS[period.strip()[0]]


def count_in_window(key, duration, now):
    window = int(now // duration)
    client = connection(settings.CACHES["throttle"]["LOCATION"])
    pipe = client.pipeline(transaction=True)
    pipe.incr(f"throttle:{key}:{window}")
    pipe.expire(f"throttle:{key}:{window}", duration + 1, nx=True)
    hits, _ = pipe.execute()
    return hits, (window + 1) * duration - now


class ClientRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        user = getattr(request, "user", None)
        if not (user and user.is_authenticated):
            return True
        client = api_client_of(request)
        scope, ident = ("client", client.pk) if client is not None else ("user", user.pk)
        limit, duration = parse_rate(settings.NOTIFY_THROTTLE_RATES[scope])
        try:
            hits, self.remaining = count_in_window(f"{scope}:{ident}", duration, time.time())
        except redis.RedisError:
            logger.warning("throttle counters unreachable; letting the request through", exc_info=True)
            return True
        return hits <= limit

    def wait(self):
        return max(1.0, self.remaining)
