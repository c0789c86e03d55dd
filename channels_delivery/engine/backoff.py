"""How long to wait before the next try of a delivery, and how many tries it gets.

A retry policy has a name and a shape (settings.NOTIFY_RETRY_POLICIES): exponential, linear,
fibonacci, or a fixed list of delays, each with max_attempts (tries in all, the first included),
a cap on one wait, and jitter. A channel has one (NOTIFY_<CHANNEL>_RETRY_POLICY), which a
category (NOTIFY_CATEGORY_RETRY_POLICY) or else a priority (NOTIFY_PRIORITY_RETRY_POLICY)
overrides: a category is an operator's word about one kind of message, so it is the more
specific. A channel that names no policy keeps the engine's exponential backoff with its own
NOTIFY_<CHANNEL>_MAX_RETRIES and _BACKOFF_MAX.
"""

import random
from dataclasses import dataclass, field

from django.conf import settings

from channels_delivery.engine.errors import retry_after_seconds

SHAPES = ("exponential", "linear", "fibonacci", "fixed")


@dataclass(frozen=True)
class RetryPolicy:
    name: str
    shape: str = "exponential"
    factor: float = 2.0  # seconds: exponential factor * 2**n, linear factor * (n + 1), fibonacci factor * F(n + 1)
    delays: tuple = field(default_factory=tuple)  # fixed: the waits in order; the last one repeats
    max_attempts: int = 6
    cap: float = 600.0
    # The share of a wait that may be taken off at random: 0 waits exactly, 0.5 is "equal jitter"
    # (a random point in the upper half, so spacing still grows while workers spread out).
    jitter: float = 0.5

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"retry policy {self.name!r}: shape must be one of {', '.join(SHAPES)}")
        if self.shape == "fixed" and not self.delays:
            raise ValueError(f"retry policy {self.name!r}: a fixed policy needs its delays")
        if self.max_attempts < 1 or self.cap <= 0 or not 0 <= self.jitter <= 1:
            raise ValueError(f"retry policy {self.name!r}: max_attempts >= 1, cap > 0 and 0 <= jitter <= 1")

    @property
    def max_retries(self):
        return self.max_attempts - 1

    def base_delay(self, retries):
        """The wait before retry number `retries` (0-based), before jitter and cap."""
        if self.shape == "exponential":
            return self.factor * 2**retries
        if self.shape == "linear":
            return self.factor * (retries + 1)
        if self.shape == "fibonacci":
            previous, current = 0, 1
            for _ in range(retries):
                previous, current = current, previous + current
            return self.factor * current
        return float(self.delays[min(retries, len(self.delays) - 1)])

    def wait(self, retries, retry_after=None):
        delay = min(self.cap, self.base_delay(retries))
        if self.jitter:
            delay -= random.uniform(0, delay * self.jitter)
        return max(delay, wait_asked(retry_after))

    def describe(self):
        if self.shape == "fixed":
            shape = "fixed " + ", ".join(f"{delay:g}" for delay in self.delays) + " s"
        else:
            shape = f"{self.shape} x{self.factor:g} s"
        return f"{self.name}: {shape}, {self.max_attempts} attempts, cap {self.cap:g} s, jitter {self.jitter:g}"


def parse_policy(name, spec):
    spec = dict(spec)
    unknown = set(spec) - {"shape", "factor", "delays", "max_attempts", "cap", "jitter"}
    if unknown:
        raise ValueError(f"retry policy {name!r}: unknown keys {', '.join(sorted(unknown))}")
    jitter = spec.pop("jitter", 0.5)
    jitter = 0.5 if jitter is True else 0.0 if jitter is False else float(jitter)
    return RetryPolicy(
        name=name,
        shape=spec.pop("shape", "exponential"),
        factor=float(spec.pop("factor", 2.0)),
        delays=tuple(float(delay) for delay in spec.pop("delays", ())),
        max_attempts=int(spec.pop("max_attempts", 6)),
        cap=float(spec.pop("cap", 600.0)),
        jitter=jitter,
    )


def channel_default(channel):
    """The engine's exponential backoff with the channel's own limits (NOTIFY_RETRY)."""
    limits = settings.NOTIFY_RETRY[channel]
    return RetryPolicy(
        name="exponential",
        factor=settings.NOTIFY_RETRY_BACKOFF,
        max_attempts=limits["max_retries"] + 1,
        cap=min(limits["backoff_max"], settings.NOTIFY_MAX_COUNTDOWN),
        jitter=0.5 if settings.NOTIFY_RETRY_JITTER else 0.0,
    )


def named(name):
    return parse_policy(name, settings.NOTIFY_RETRY_POLICIES[name])


def policy_for(channel, category=None, priority=None):
    """The policy a delivery of `channel` retries under; (policy, why it was chosen)."""
    for overrides, key, kind in (
        (settings.NOTIFY_CATEGORY_RETRY_POLICY, category, "category"),
        (settings.NOTIFY_PRIORITY_RETRY_POLICY, priority, "priority"),
        (settings.NOTIFY_CHANNEL_RETRY_POLICY, channel, "channel"),
    ):
        if key and overrides.get(key):
            return named(overrides[key]), f"{kind} {key}"
    return channel_default(channel), f"channel {channel} default"


def countdown(retries, *, factor, maximum, jitter=True, retry_after=None):
    """Seconds before retry number `retries` (0-based) under plain exponential backoff."""
    policy = RetryPolicy(name="exponential", factor=factor, cap=maximum, jitter=0.5 if jitter else 0.0)
    return policy.wait(retries, retry_after)


def wait_asked(retry_after):
    """The provider's wait in seconds: a number already parsed, or a raw Retry-After value."""
    if retry_after in (None, ""):
        return 0.0
    if isinstance(retry_after, (int, float)):
        return max(float(retry_after), 0.0)
    return retry_after_seconds({"Retry-After": retry_after}) or 0.0
