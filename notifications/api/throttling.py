"""Throttling in Redis, shared by every web process: a fixed window per caller, counted with one
INCR in a MULTI/EXEC, so concurrent requests can never overshoot the limit (a read-then-write
counter lets every racer read the same count).

- per API client, or per user for end users (`NOTIFY_THROTTLE_RATES["client"|"user"]`);
- per client address on the unauthenticated paths (unsubscribe links, provider callbacks);
- failed logins (a bad API key or token) per address: past the limit, that address is refused
  before its credentials are even checked, until the window ends.
"""

import functools
import time

import redis
from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from notifications.models import ApiClient


parse_rate = SimpleRateThrottle.parse_rate


@functools.lru_cache(maxsize=4)
def _redis(url):
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def counter():
    return _redis(settings.CACHES["throttle"]["LOCATION"])


def window_key(name, duration, now):
    return f"throttle:{name}:{int(now // duration)}"


def hit(name, rate, now=None):
    """Count one request against `rate` ("N/period"); returns (allowed, seconds until the window ends)."""
    limit, duration = parse_rate(SimpleRateThrottle, rate)
    now = time.time() if now is None else now
    key = window_key(name, duration, now)
    pipe = counter().pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, duration + 1)
    # Redis unreachable: the RedisError becomes a 503 with Retry-After (api/errors.py), as for the
    # database: abuse protection that silently switched itself off would invite the abuse.
    count, _ = pipe.execute()
    return count <= limit, max(1, int(duration - now % duration))


def exceeded(name, rate, now=None):
    """Whether `name` is over `rate` in the current window, without counting; (over, wait)."""
    limit, duration = parse_rate(SimpleRateThrottle, rate)
    now = time.time() if now is None else now
    count = int(counter().get(window_key(name, duration, now)) or 0)
    return count >= limit, max(1, int(duration - now % duration))


def client_address(request):
    return request.META.get("REMOTE_ADDR") or "unknown"


class ClientRateThrottle(BaseThrottle):
    """Per API client, or per user for end users; anonymous requests are left to the views
    (which refuse them) and to the address throttles below."""

    wait_seconds = None

    def allow_request(self, request, view):
        user = getattr(request, "user", None)
        if not (user and user.is_authenticated):
            return True
        client = request.auth if isinstance(request.auth, ApiClient) else None
        scope, ident = ("client", client.pk) if client is not None else ("user", user.pk)
        rate = settings.NOTIFY_THROTTLE_RATES.get(scope)
        if not rate:
            return True
        allowed, self.wait_seconds = hit(f"{scope}:{ident}", rate)
        return allowed

    def wait(self):
        return self.wait_seconds


def refuse_failed_logins(request):
    """Raise Throttled when this address failed to log in too often in the current window."""
    rate = settings.NOTIFY_THROTTLE_RATES.get("login_failures")
    if rate:
        over, wait = exceeded(f"login_failures:{client_address(request)}", rate)
        if over:
            raise Throttled(wait=wait, detail="Too many failed logins from this address; try again later.")


def note_failed_login(request):
    rate = settings.NOTIFY_THROTTLE_RATES.get("login_failures")
    if rate:
        hit(f"login_failures:{client_address(request)}", rate)
