"""The one list of channels. Everything per channel is derived from it: the `Channel` choices,
the queues and task routes (config/celery.py), the delivery tasks (engine/tasks.py), the retry
settings, the installed apps, the URL includes and the workers the Procfile must run.

A channel is a package under channels_delivery/channels/<name>/ (a Django app) whose `channel`
module defines CHANNEL, a `channels_delivery.engine.base.ChannelKit`: its providers in failover
order, how it finds a user's address, its default layout and its typed message. This module only
names the packages and imports none of them, so the settings, the models and the engine can read
it; the kit is loaded on first use (kit()).
"""

from dataclasses import dataclass
from functools import cache
from importlib import import_module


@dataclass(frozen=True)
class ChannelEntry:
    name: str
    max_retries: int = 5  # per channel; NOTIFY_<NAME>_MAX_RETRIES overrides it
    backoff_max: int = 600  # seconds; NOTIFY_<NAME>_BACKOFF_MAX overrides it
    concurrency: int = 1  # the Procfile's default worker concurrency for its queue

    @property
    def package(self):
        return f"channels_delivery.channels.{self.name}"

    @property
    def queue(self):
        return self.name

    @property
    def task_name(self):
        return f"channels_delivery.deliver_{self.name}"

    @property
    def chunk_task_name(self):
        """The task that takes a chunk of first tries (engine/chunks.py)."""
        return f"channels_delivery.deliver_{self.name}_chunk"


CHANNELS = [
    ChannelEntry("email", concurrency=2),
    ChannelEntry("sms"),
    ChannelEntry("push"),
    ChannelEntry("webhook"),
    ChannelEntry("slack"),
    ChannelEntry("inapp"),
    ChannelEntry("telegram"),
]

BY_NAME = {entry.name: entry for entry in CHANNELS}
NAMES = [entry.name for entry in CHANNELS]


@cache
def kit(name):
    """The channel's ChannelKit (providers, address lookup, layout, message type)."""
    return import_module(f"{BY_NAME[name].package}.channel").CHANNEL


def providers_for(channel):
    return [provider for provider in kit(channel).providers if provider.is_configured()]
