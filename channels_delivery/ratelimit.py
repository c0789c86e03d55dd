"""A global token bucket per provider in Redis. Celery's own rate_limit is per worker process,
so N workers would send N times the provider's limit; this one is shared by all of them."""

from django.conf import settings

from .shared_state import client

# KEYS: bucket. ARGV: rate (tokens/s), capacity. Redis' own clock, so workers' clocks may differ.
# Returns 0 when a token was taken, else the seconds until one is available (as a string).
TAKE = """
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local now_parts = redis.call('time')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local state = redis.call('hmget', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('hset', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('pexpire', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return tostring(wait)
"""


def limit_for(provider):
    return settings.NOTIFY_RATE_LIMITS.get(provider)


def take(provider):
    """Take one token for a call to `provider`: 0.0 when granted, else seconds to wait."""
    limit = limit_for(provider)
    if limit is None:
        return 0.0
    rate, burst = limit
    return float(client().eval(TAKE, 1, f"notify:rate:{provider}", rate, burst))
