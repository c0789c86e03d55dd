"""`/ws/notifications/`: one connection of one user's device.

client -> server (JSON with a `type`; an optional `requestId` is echoed in the answer):
  subscribe {categories: [...] | "all"}      which categories this connection is pushed
  ack {id}                                   marks the notification seen
  read {id}                                  marks it read
  updatePreferences {preferences: {...}}     the REST preferences document, validated alike
  requestMissedNotifications {since | after} what was sent since a time or after a notification
  ping                                       answered by pong (protocol pings run underneath)
server -> client:
  notification, notificationStatus {id, status, at}, unreadCount {count}, subscribed,
  preferences, missedNotifications {count}, pong, error {code, message, errors?}

A bad message gets an `error` and the connection lives on; a flood of them (or of anything)
closes it with 1008. A missing or refused token closes it with 4401 right after the handshake,
so that browsers see the code.
"""

import asyncio
import json
import logging
import time
from collections import deque

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from rest_framework import serializers

from notifications.api.inbox import set_mark
from notifications.api.preferences import PreferencesSerializer, apply, document
from notifications.models import Notification
from notifications.models import categories as all_categories
from notifications.ops.metrics import WS_HANDSHAKES
from notifications.realtime import events
from notifications.realtime.auth import SUBPROTOCOL
from notifications.realtime.batching import Batch, database_work
from notifications.realtime.relay import relay

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013


class BadMessage(Exception):
    def __init__(self, code, message, errors=None):
        super().__init__(message)
        self.code, self.errors = code, errors


class SubscribeSerializer(serializers.Serializer):
    categories = serializers.JSONField(required=False, default="all")

    def validate_categories(self, value):
        if value == "all":
            return value
        if not isinstance(value, list) or not all(isinstance(key, str) for key in value) or len(value) > 100:
            raise serializers.ValidationError('A list of category keys, or "all".')
        return value


class MarkSerializer(serializers.Serializer):
    id = serializers.UUIDField()


class MissedSerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    after = serializers.UUIDField(required=False)

    def validate(self, attrs):
        if "since" in attrs and "after" in attrs:
            raise serializers.ValidationError("Give `since` or `after`, not both.")
        return attrs


class PreferencesMessageSerializer(serializers.Serializer):
    preferences = serializers.DictField()


def validated(serializer_class, message):
    body = {key: value for key, value in message.items() if key not in ("type", "requestId")}
    serializer = serializer_class(data=body)
    if not serializer.is_valid():
        raise BadMessage("invalid", "The message has field errors.", serializer.errors)
    return serializer.validated_data


class Flood:
    """Counts events in a sliding window; True once there are more than `limit`."""

    def __init__(self, limit, window):
        self.limit, self.window, self.times = limit, window, deque()

    def hit(self):
        now = time.monotonic()
        self.times.append(now)
        while self.times and self.times[0] < now - self.window:
            self.times.popleft()
        return len(self.times) > self.limit


def load_inboxes(user_ids):
    """[(missed notifications, unread count)] for each user id (connecting, or asking what it missed
    without since/after): two queries for all of them."""
    notifications, counts = events.unread_missed(user_ids), events.unread_counts(user_ids)
    return [(notifications[user_id], counts.get(user_id, 0)) for user_id in user_ids]


inboxes = Batch(load_inboxes)


class InboxConsumer(AsyncWebsocketConsumer):
    # A connection has no channel of its own (no Redis receive per connection): this process's
    # relay hands it its pushes.
    channel_layer_alias = None
    user_id = None
    messages = bad_messages = None  # Floods, made on the first message

    async def __call__(self, scope, receive, send):
        """Channels' loop (await_many_dispatch) without its second source: the client is the one
        thing a connection listens to, so each message is awaited straight, with no task and no
        asyncio.wait per message (asyncio.wait was 6% of the process's busy samples while 10,000
        clients reconnected; a connection also holds about 3 KiB less)."""
        self.scope, self.channel_layer, self.base_send = scope, None, send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            # Where every connection leaves its relay: after websocket.disconnect, and when a send
            # found the client gone (uvicorn raises ClientDisconnected out of it, and no
            # websocket.disconnect follows), as for a client hanging up while its inbox loads.
            self.leave()

    async def connect(self):
        """Accepted (101) once its inbox is read, so that the answer and the inbox's first messages
        leave together (HeldWrites in notifications/realtime/protocol.py). Refusals are accepted
        first and then closed, so that browsers see the close code."""
        user = self.scope.get("user")
        if self.scope.get("auth_refused") or user is None or not user.is_authenticated:
            WS_HANDSHAKES.labels("refused").inc()
            await self.accept_offered()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
        self.categories = None  # all
        # Pushes arriving before the inbox is sent wait in the outbox (self.inbox_sent is False).
        self.outbox, self.writer, self.inbox_sent = deque(maxlen=settings.NOTIFY_WS_BACKLOG), None, False
        # Joined first, then read the inbox: a notification arriving in between comes twice at
        # worst (clients keep one per id), never not at all.
        await relay.join(self)
        try:
            answers = await self.missed_answers({})
        except DatabaseError:
            # The token was good: the client is told to try again later (1013), as when Postgres
            # fails during the token check, and the inbox page reconnects with backoff.
            logger.warning("the database failed while reading a connecting user's inbox, so the WebSocket "
                           "was closed for the client to retry", exc_info=True)
            WS_HANDSHAKES.labels("unavailable").inc()
            await self.accept_offered()
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        WS_HANDSHAKES.labels("accepted").inc()
        await self.accept_offered()
        for answer in answers:
            await self.send_json(answer)
        self.inbox_sent = True
        self.write_pushes()

    async def accept_offered(self):
        offered = self.scope.get("subprotocols", [])
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)

    # Channels closes stale database connections before every message and after a disconnect, on
    # its single thread-sensitive thread: a hop to that one thread per event, a queue under a
    # reconnect storm. Nothing here uses that thread's connection: every query runs through
    # database_work, whose calls close their own thread's stale connections before and after.
    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message):
        await self.disconnect(message["code"])
        raise StopConsumer()

    def leave(self):
        if self.user_id is not None:
            relay.leave(self)
            if self.writer is not None:
                self.writer.cancel()

    async def send_json(self, message):
        await self.send(text_data=json.dumps(message, separators=(",", ":")))

    # --- from the client -------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None):
        if self.user_id is None:
            return
        if self.messages is None:  # made on the first message: most connections only listen
            self.messages = Flood(settings.NOTIFY_WS_MAX_MESSAGES, settings.NOTIFY_WS_FLOOD_WINDOW)
            self.bad_messages = Flood(settings.NOTIFY_WS_MAX_BAD_MESSAGES, settings.NOTIFY_WS_FLOOD_WINDOW)
        if self.messages.hit():
            await self.close(code=CLOSE_POLICY_VIOLATION)
            return
        request_id = None
        try:
            message = self.parse(text_data, bytes_data)
            request_id = message.get("requestId")
            handler = self.HANDLERS.get(message["type"])
            if handler is None:
                raise BadMessage("unknown_type", f"Unknown message type {message['type'][:50]!r}.")
            answers = await handler(self, message)
        except BadMessage as bad:
            if self.bad_messages.hit():
                await self.close(code=CLOSE_POLICY_VIOLATION)
                return
            answers = [{"type": "error", "code": bad.code, "message": str(bad), **({"errors": bad.errors} if bad.errors else {})}]
        except DatabaseError:
            # As REST answers 503: nothing was changed, the connection lives on, the client retries.
            logger.warning("the database failed while answering a WebSocket message", exc_info=True)
            answers = [{"type": "error", "code": "unavailable",
                        "message": "The service could not reach its database; nothing was changed. Try again shortly."}]
        for answer in answers:
            if request_id is not None and answer["type"] != "notification":
                answer = {**answer, "requestId": request_id}
            await self.send_json(answer)

    def parse(self, text_data, bytes_data):
        if text_data is None:
            raise BadMessage("invalid_message", "Messages are JSON text frames.")
        if len(text_data) > settings.NOTIFY_WS_MAX_MESSAGE_BYTES:
            raise BadMessage("too_large", f"Messages are at most {settings.NOTIFY_WS_MAX_MESSAGE_BYTES} bytes.")
        try:
            message = json.loads(text_data)
        except ValueError as error:
            raise BadMessage("invalid_json", "Not JSON.") from error
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise BadMessage("invalid_message", "A message is a JSON object with a string `type`.")
        request_id = message.get("requestId")
        if request_id is not None and not (isinstance(request_id, (str, int)) and len(str(request_id)) <= 100):
            raise BadMessage("invalid_message", "`requestId` is a string or number of at most 100 characters.")
        return message

    async def on_subscribe(self, message):
        categories = validated(SubscribeSerializer, message)["categories"]
        if categories == "all":
            self.categories = None
        else:
            known = set(await database_work(all_categories)())
            unknown = sorted(set(categories) - known)
            if unknown:
                raise BadMessage("invalid", "Unknown categories.", {"categories": [f"Unknown category '{key}'." for key in unknown]})
            self.categories = set(categories)
        return [{"type": "subscribed", "categories": "all" if self.categories is None else sorted(self.categories)}]

    async def on_ack(self, message):
        return await self.mark(message, "seen")

    async def on_read(self, message):
        return await self.mark(message, "read")

    async def mark(self, message, mark):
        notification_id = validated(MarkSerializer, message)["id"]
        found = await database_work(self.set_mark)(notification_id, mark)
        if not found:
            raise BadMessage("not_found", "No such notification in your inbox.")
        return []  # every device, this one included, hears the change from the group

    def set_mark(self, notification_id, mark):
        notification = Notification.objects.filter(id=notification_id, recipient_id=self.user_id).first()
        if notification is None:
            return False
        set_mark(notification, mark, on=True)
        return True

    async def on_update_preferences(self, message):
        body = validated(PreferencesMessageSerializer, message)["preferences"]
        return [{"type": "preferences", "preferences": await database_work(self.update_preferences)(body)}]

    def update_preferences(self, body):
        serializer = PreferencesSerializer(data=body)
        if not serializer.is_valid():
            raise BadMessage("invalid", "The preferences have field errors.", serializer.errors)
        user = self.scope["user"]
        apply(user, serializer.validated_data)
        return document(user)

    async def on_request_missed(self, message):
        wanted = validated(MissedSerializer, message)
        return await self.missed_answers(wanted)

    async def missed_answers(self, wanted):
        found = await (inboxes(self.user_id) if not wanted else database_work(self.load_missed)(wanted))
        if found is None:
            raise BadMessage("not_found", "No such notification in your inbox.", {"after": ["Unknown notification."]})
        notifications, count = found
        shown = [n for n in notifications if self.wants(n["category"])]
        return [*shown, {"type": "missedNotifications", "count": len(shown)}, events.unread_count_message(count)]

    def load_missed(self, wanted):
        notifications = events.missed(self.user_id, since=wanted.get("since"), after_id=wanted.get("after"))
        if notifications is None:
            return None
        return notifications, events.unread_count(self.user_id)

    async def on_ping(self, message):
        return [{"type": "pong"}]

    HANDLERS = {
        "subscribe": on_subscribe,
        "ack": on_ack,
        "read": on_read,
        "updatePreferences": on_update_preferences,
        "requestMissedNotifications": on_request_missed,
        "ping": on_ping,
    }

    # --- from the relay ---------------------------------------------------------------------
    def wants(self, category):
        return self.categories is None or category in self.categories

    def push(self, messages):
        """Queues what the relay hands over; the writer sends it in order. A full backlog drops its
        oldest (a slow client holds up only itself, and finds them again as missed). Returns how
        many were queued and how many older ones that dropped."""
        queued = dropped = 0
        for message in messages:
            if message["type"] != "notification" or self.wants(message["category"]):
                dropped += len(self.outbox) == self.outbox.maxlen
                self.outbox.append(message)
                queued += 1
        self.write_pushes()
        return queued, dropped

    def write_pushes(self):
        if self.outbox and self.writer is None and self.inbox_sent:
            self.writer = asyncio.get_running_loop().create_task(self.write_out())

    async def write_out(self):
        try:
            while self.outbox:
                await self.send_json(self.outbox.popleft())
        except Exception:
            logger.info("dropped a connection's pushes: it is gone", exc_info=True)
            self.outbox.clear()
        finally:
            self.writer = None
