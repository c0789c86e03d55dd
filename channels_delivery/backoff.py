"""How long to wait before the next try of a delivery."""

import email.utils
import random
import time


def countdown(retries, *, factor, maximum, jitter=True, retry_after=None):
    """Seconds before retry number `retries` (0-based).

    Exponential (factor * 2**retries, capped at maximum) with "equal jitter": a random point in
    the upper half, so spacing still grows while workers spread out. Celery's own
    retry_backoff/retry_jitter rounds to whole seconds and uses full jitter, which can retry
    after 0 s; and it cannot honour a provider's Retry-After.
    """
    delay = min(maximum, factor * 2**retries)
    if jitter:
        delay = delay / 2 + random.uniform(0, delay / 2)
    return max(delay, parse_retry_after(retry_after) or 0.0)


def parse_retry_after(value):
    """A Retry-After value (seconds or an HTTP date) as seconds from now, or None."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return max(float(value), 0.0)
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
