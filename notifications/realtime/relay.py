"""The ASGI process's end of the live pushes: one relay per process hands them to its connections.

Publishers (in-app workers, web processes) send one channel-layer message per batch of users to
the group every relay has joined; each relay keeps which of its own connections belong to which
user and hands the batch out locally. So a broadcast to 10,000 connected users is a hundred
messages through Redis per process, not 10,000, and a connection costs no Redis round trip to
open or close. Every relay reads every batch: looking up a user not connected here is a dict miss.

A relay renews its membership every NOTIFY_WS_RELAY_RENEW seconds, so it is back in the group soon
after Redis lost it (a restart without persistence); a killed process's membership lapses after
NOTIFY_WS_GROUP_EXPIRY, and what was sent to it expires after NOTIFY_WS_BACKLOG_EXPIRY.
"""

import asyncio
import logging
import os
import socket
from collections import defaultdict

from channels.layers import get_channel_layer
from django.conf import settings

from notifications import shared_state
from notifications.ops.metrics import WS_PUSHES
from notifications.realtime.events import RELAY_GROUP

logger = logging.getLogger(__name__)

# After a failed join or receive, the relay tries again this much later (seconds).
RETRY_AFTER = 1.0
# A connection waits at most this long (seconds) for its process's relay to start listening.
JOIN_WAIT = 2.0


class Relay:
    def __init__(self):
        self.loop, self.ready, self.tasks = None, None, []
        self.connections = defaultdict(set)

    async def join(self, consumer):
        """Registers a connection (its `user_id` set). The first one starts this process's relay;
        until it listens, each connection waits up to JOIN_WAIT for it, so that it is reachable
        before it reads its inbox. While the channel layer is unreachable the relay keeps trying
        in the background and connections still work (their inbox comes from Postgres); live
        pushes resume once it listens."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop, self.connections = loop, defaultdict(set)
            self.ready = loop.create_task(self.start(get_channel_layer()))
        self.connections[consumer.user_id].add(consumer)
        if not self.ready.done():
            # shield: one done-callback per waiter, run once. asyncio.wait removes its callback
            # from the task afterwards, a scan of every other waiter's: quadratic when thousands
            # of connections arrive together after a restart (15% of its GIL-holding samples in one storm).
            try:
                await asyncio.wait_for(asyncio.shield(self.ready), JOIN_WAIT)
            except Exception:  # not listening yet (or never): the inbox still comes from Postgres
                pass

    def leave(self, consumer):
        consumers = self.connections.get(consumer.user_id)
        if consumers is not None:
            consumers.discard(consumer)
            if not consumers:
                del self.connections[consumer.user_id]

    async def start(self, layer):
        channel = await layer.new_channel()
        while True:
            try:
                await layer.group_add(RELAY_GROUP, channel)
                break
            except Exception:
                logger.warning("the relay could not join the channel layer; live pushes wait for it", exc_info=True)
                await asyncio.sleep(RETRY_AFTER)
        self.tasks = [asyncio.create_task(self.listen(layer, channel)), asyncio.create_task(self.stay_joined(layer, channel))]

    async def listen(self, layer, channel):
        while True:
            try:
                event = await layer.receive(channel)
            except Exception:
                logger.warning("the relay could not receive from the channel layer; retrying", exc_info=True)
                await asyncio.sleep(RETRY_AFTER)
                continue
            try:
                self.hand_out(event["pushes"])
            except Exception:  # a malformed batch is lost alone; the relay listens on
                logger.exception("the relay could not hand out a batch of pushes")

    async def stay_joined(self, layer, channel):
        """Renews the membership, and publishes how many connections this process holds (/metrics)."""
        key = f"{shared_state.WS_CONNECTIONS_PREFIX}{socket.gethostname()}:{os.getpid()}"
        while True:
            try:
                await asyncio.to_thread(shared_state.client().set, key, self.count(), ex=int(settings.NOTIFY_WS_RELAY_RENEW * 3) + 1)
            except Exception:
                logger.warning("the relay could not publish its connection count", exc_info=True)
            await asyncio.sleep(settings.NOTIFY_WS_RELAY_RENEW)
            try:
                await layer.group_add(RELAY_GROUP, channel)
            except Exception:
                logger.warning("the relay could not renew its channel-layer membership", exc_info=True)

    def count(self):
        return sum(len(consumers) for consumers in self.connections.values())

    def hand_out(self, pushes):
        queued = dropped = 0
        for user_id, messages in pushes:
            for consumer in self.connections.get(user_id, ()):
                more, lost = consumer.push(messages)
                queued, dropped = queued + more, dropped + lost
        if queued:
            WS_PUSHES.labels("queued").inc(queued)
        if dropped:
            WS_PUSHES.labels("dropped").inc(dropped)


relay = Relay()
