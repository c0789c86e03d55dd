"""A global token bucket per provider in Redis. Celery's own rate_limit is per worker process,
so N workers would send N times the provider's limit; this one is shared by all of them.

Over the limit, a delivery does not poll: it reserves the next free slot (the bucket goes into
debt by one token) and is re-queued to run at that slot, when it finds its reservation and
spends no further token. So a backlog drains at the provider's rate with one re-queue per
delivery, instead of every waiting task retrying each time a token appears. A holder that turns
up well after its slot loses it (calls must not bunch up behind a busy worker) and books again.
"""

from django.conf import settings

from notifications.shared_state import client

# KEYS: bucket, this holder's reservation. ARGV: rate (tokens/s), capacity, reserve (0/1).
# Redis' own clock, so workers' clocks may differ. Returns 0 when the call may go now, else the
# seconds until the holder's slot (as a string).
TAKE = """
local rate, capacity, reserve = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local now_parts = redis.call('time')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local slot = tonumber(redis.call('get', KEYS[2]))
if slot then
  if slot > now + 0.005 then return tostring(slot - now) end
  redis.call('del', KEYS[2])
  -- On time: the booked token is this call's. Late (a busy worker): calls made long after their
  -- slots would bunch up, so a late holder gives its slot up and queues again like anyone else.
  if now - slot <= math.min(0.25, math.max(0.02, 1 / rate)) then return '0' end
end
local state = redis.call('hmget', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
elseif reserve then
  tokens = tokens - 1
  wait = -tokens / rate
  redis.call('set', KEYS[2], tostring(now + wait), 'PX', math.ceil(wait * 1000) + 600000)
else
  wait = (1 - tokens) / rate
end
redis.call('hset', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('pexpire', KEYS[1], math.ceil((capacity - math.min(tokens, 0)) / rate * 1000) + 1000)
return tostring(wait)
"""


def limit_for(provider):
    return settings.NOTIFY_RATE_LIMITS.get(provider)


def take(provider, holder, reserve=True):
    """May `holder` (a delivery id) call `provider` now? 0.0 when yes, else seconds to wait.

    reserve: when over the limit, book the next free slot for this holder (its next call at or
    after that moment goes through without another token). Without it, just answer the wait.
    """
    limit = limit_for(provider)
    if limit is None:
        return 0.0
    rate, burst = limit
    keys = (f"notify:rate:{provider}", f"notify:rate:{provider}:slot:{holder}")
    return float(client().eval(TAKE, 2, *keys, rate, burst, 1 if reserve else 0))


# KEYS: bucket. ARGV: rate, capacity, wanted. Takes up to `wanted` whole tokens at once, never
# going into debt (slots are booked one holder at a time, by take()). Returns how many it took.
TAKE_MANY = """
local rate, capacity, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now_parts = redis.call('time')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local state = redis.call('hmget', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local granted = math.max(0, math.min(wanted, math.floor(tokens)))
tokens = tokens - granted
redis.call('hset', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('pexpire', KEYS[1], math.ceil((capacity - math.min(tokens, 0)) / rate * 1000) + 1000)
return granted
"""


def take_many(provider, wanted):
    """Tokens for up to `wanted` calls to `provider` now, in one round trip (a chunk's): how many
    may go. The others wait their turn one by one, each booking its own slot through take()."""
    limit = limit_for(provider)
    if limit is None:
        return wanted
    rate, burst = limit
    return int(client().eval(TAKE_MANY, 1, f"notify:rate:{provider}", rate, burst, wanted))
