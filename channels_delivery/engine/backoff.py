"""How long to wait before the next try of a delivery."""

import random

from channels_delivery.engine.errors import retry_after_seconds


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
    return max(delay, wait_asked(retry_after))


def wait_asked(retry_after):
    """The provider's wait in seconds: a number already parsed, or a raw Retry-After value."""
    if retry_after in (None, ""):
        return 0.0
    if isinstance(retry_after, (int, float)):
        return max(float(retry_after), 0.0)
    return retry_after_seconds({"Retry-After": retry_after}) or 0.0
