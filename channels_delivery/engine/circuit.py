"""A circuit breaker per provider, kept in Redis so every worker sees the same state; for
channels whose destinations users choose (webhooks, push), one per destination host instead, so
one user's failing endpoint cannot open the circuit for everyone.

closed: calls go through; transient failures are counted in a fixed window.
open: after NOTIFY_CIRCUIT_FAILURES failures in the window no call is made for
    NOTIFY_CIRCUIT_OPEN_SECONDS.
half-open: then exactly one worker gets to probe; success closes the circuit, failure re-opens it.

Each transition is one Lua script, so two workers never both probe or both miss a trip.
"""

from urllib.parse import urlsplit

from django.conf import settings

from channels_delivery.engine.errors import TransientDeliveryError
from notifications.shared_state import client

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

# KEYS: open, tripped, probe. ARGV: probe ttl (ms). Returns "closed", "probe" or "open".
ALLOW = """
if redis.call('exists', KEYS[1]) == 1 then return 'open' end
if redis.call('exists', KEYS[2]) == 1 then
  if redis.call('set', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 'probe' end
  return 'open'
end
return 'closed'
"""

# KEYS: failures, open, tripped, probe. ARGV: window (ms), threshold, open (ms).
FAILURE = """
if redis.call('exists', KEYS[3]) == 1 and redis.call('exists', KEYS[2]) == 0 then
  redis.call('set', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('del', KEYS[4])
  return 'open'
end
local failures = redis.call('incr', KEYS[1])
if failures == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end
if failures >= tonumber(ARGV[2]) then
  redis.call('set', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('set', KEYS[3], '1')
  redis.call('del', KEYS[1], KEYS[4])
  return 'open'
end
return 'closed'
"""

# KEYS: failures, tripped, probe. Any answer from the provider closes a tripped circuit.
SUCCESS = """
if redis.call('exists', KEYS[2]) == 1 then
  redis.call('del', KEYS[1], KEYS[2], KEYS[3])
  return 'closed'
end
return 'closed'
"""


class CircuitBreaker:
    def __init__(self, provider):
        self.provider = provider
        prefix = f"notify:circuit:{provider}"
        self.failures_key, self.open_key = f"{prefix}:failures", f"{prefix}:open"
        self.tripped_key, self.probe_key = f"{prefix}:tripped", f"{prefix}:probe"

    def allow(self):
        """May we call the provider now? Claims the probe when the circuit is half-open."""
        return self.answer() != "open"

    def answer(self):
        """allow()'s answer in full: "closed", "probe" (this caller probes) or "open"."""
        ttl = int(settings.NOTIFY_CIRCUIT_PROBE_SECONDS * 1000)
        return client().eval(ALLOW, 3, self.open_key, self.tripped_key, self.probe_key, ttl).decode()

    def is_open(self):
        """Peek without claiming the probe: True while no call would be allowed."""
        redis = client()
        if redis.exists(self.open_key):
            return True
        return bool(redis.exists(self.tripped_key) and redis.exists(self.probe_key))

    def remaining(self):
        """Seconds until an open circuit lets a probe through (0 when it is not open)."""
        ttl = client().pttl(self.open_key)
        return max(ttl, 0) / 1000

    def record_failure(self):
        window = int(settings.NOTIFY_CIRCUIT_WINDOW * 1000)
        open_ms = int(settings.NOTIFY_CIRCUIT_OPEN_SECONDS * 1000)
        keys = (self.failures_key, self.open_key, self.tripped_key, self.probe_key)
        return client().eval(FAILURE, 4, *keys, window, settings.NOTIFY_CIRCUIT_FAILURES, open_ms).decode()

    def record_success(self):
        client().eval(SUCCESS, 3, self.failures_key, self.tripped_key, self.probe_key)

    def state(self):
        if client().exists(self.open_key):
            return OPEN
        if client().exists(self.tripped_key):
            return HALF_OPEN
        return CLOSED

    def reset(self):
        client().delete(self.failures_key, self.open_key, self.tripped_key, self.probe_key)


def breaker(provider):
    return CircuitBreaker(provider)


class NoBreaker:
    """Stands in for the shared breaker of a provider that keeps one per destination."""

    def allow(self):
        return True

    def answer(self):
        return CLOSED

    def is_open(self):
        return False

    def remaining(self):
        return 0

    def record_failure(self):
        return CLOSED

    def record_success(self):
        pass


NO_SHARED_BREAKER = NoBreaker()


def breaker_for(provider):
    """The provider's shared breaker, or none for one that keeps a breaker per destination."""
    return breaker(provider.name) if provider.shared_breaker else NO_SHARED_BREAKER


def destination_breaker(provider, url):
    """The breaker of one user-supplied destination: the provider and the URL's host and port."""
    parts = urlsplit(url)
    return CircuitBreaker(f"{provider}@{(parts.hostname or '?').lower()}:{parts.port or parts.scheme}")


def through_destination_breaker(provider, url, call):
    """Run call() -> (error or None, detail) behind the destination's breaker: not called while
    it is open; a transient error counts against that destination only."""
    circuit = destination_breaker(provider, url)
    if not circuit.allow():
        host = urlsplit(url).hostname or "?"
        wait = circuit.remaining()
        return TransientDeliveryError(f"{provider}: circuit open for {host}, not called",
                                      retry_after=wait or None), {}
    error, detail = call()
    if isinstance(error, TransientDeliveryError):
        circuit.record_failure()
    else:
        circuit.record_success()
    return error, detail
