"""Per-client quota on recipients per minute, counted atomically in Redis for every web process.

Request throttling counts calls; one call may name 1,000 recipients or an audience of everyone,
so what a client may reach in a minute is counted here, by recipients (NOTIFY_CLIENT_RECIPIENTS_PER_MINUTE).
A send that would go over is refused whole (429 with Retry-After) and counts nothing.
"""

import time
from functools import lru_cache

import redis
from django.conf import settings
from rest_framework.exceptions import Throttled

WINDOW_SECONDS = 60

# KEYS: counter. ARGV: amount, limit, window (s). Returns -1 when taken, else the window's ttl (ms).
TAKE = """
local used = tonumber(redis.call('get', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  local ttl = redis.call('pttl', KEYS[1])
  if ttl < 0 then ttl = tonumber(ARGV[3]) * 1000 end
  return ttl
end
redis.call('incrby', KEYS[1], ARGV[1])
if used == 0 then redis.call('expire', KEYS[1], ARGV[3]) end
return -1
"""


@lru_cache(maxsize=4)
def _take(url):
    """TAKE as a registered script: EVALSHA (loaded again by redis-py if Redis lost it), so each
    call sends the script's hash, not its text."""
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).register_script(TAKE)


class RecipientQuotaExceeded(Throttled):
    default_detail = "Too many recipients this minute for this API key."


def take_recipients(client, count, now=None):
    """Count `count` recipients against the client's minute, or raise RecipientQuotaExceeded."""
    limit = settings.NOTIFY_CLIENT_RECIPIENTS_PER_MINUTE
    if count > limit:
        raise RecipientQuotaExceeded(
            detail=f"{count} recipients is more than this API key may reach in a minute ({limit}).", wait=WINDOW_SECONDS
        )
    window = int((now or time.time()) // WINDOW_SECONDS)
    key = f"quota:recipients:{client.owner_id}:{window}"
    ttl_ms = _take(settings.CACHES["throttle"]["LOCATION"])(keys=[key], args=[count, limit, WINDOW_SECONDS])
    if ttl_ms >= 0:
        raise RecipientQuotaExceeded(
            detail=f"Over this API key's {limit} recipients a minute.", wait=max(1, round(ttl_ms / 1000))
        )
