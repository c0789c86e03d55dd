"""What the server pushes to a user's open WebSockets, through the Redis channel layer.

Every ASGI process's relay (relay.py) is in the group RELAY_GROUP and knows its own connections;
a worker or web process anywhere reaches every device of a batch of users with one group_send,
and each relay hands the batch to the connections it holds. Postgres stays the truth:
an event lost here (Redis down, client offline, backlog full) is found again by the client's
missed-notifications request, so publishing never fails the caller.
"""

import asyncio
import logging
import os
import threading

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from notifications.models import (
    PLACEHOLDER_ID,
    PLACEHOLDER_UUID,
    Channel,
    CompiledQuery,
    Delivery,
    DeliveryGroups,
    Notification,
    uuid_values,
)

logger = logging.getLogger(__name__)

# A publish waits at most this long (seconds) for Redis; past it the event is dropped and logged.
PUBLISH_TIMEOUT = 2.0


RELAY_GROUP = "inbox.relays"


# The columns notification_message reads (and sealing needs: the category), so a chunk's push does
# not load and decode each row's trace, routes and context.
MESSAGE_FIELDS = ("id", "recipient_id", "category_id", "title", "body", "priority", "data", "created_at", "read_at",
                  "seen_at")


def notification_message(notification):
    """The `notification` message of the protocol."""
    return {
        "type": "notification",
        "id": str(notification.id),
        "category": notification.category_id,
        "title": notification.title,
        "message": notification.body,
        "priority": notification.priority,
        "data": notification.data,
        "created_at": notification.created_at.isoformat(),
        "read_at": notification.read_at.isoformat() if notification.read_at else None,
        "seen_at": notification.seen_at.isoformat() if notification.seen_at else None,
    }


def status_message(notification_id, status, at):
    return {"type": "notificationStatus", "id": str(notification_id), "status": status,
            "at": at.isoformat() if at else None}


def unread_count_message(count):
    return {"type": "unreadCount", "count": count}


def shown_in_app(queryset):
    """Notifications whose in-app delivery went out: the ones a client was (or would have been) sent."""
    delivered = Delivery.objects.filter(notification=OuterRef("pk"), channel=Channel.INAPP, status__in=DeliveryGroups.REACHED)
    return queryset.filter(Exists(delivered))


def unread_count(user_id):
    return unread_counts([user_id]).get(user_id, 0)


def unread_per_recipient(**recipients):
    """The unread, unarchived notifications of the recipients a `recipient_id` lookup names,
    counted per recipient (`recipient_id`, `count`)."""
    return (Notification.objects.filter(archived_at__isnull=True, **recipients).unread()
            .order_by().values("recipient_id").annotate(count=Count("id")))


unread_counts_query = CompiledQuery(
    lambda user_ids: unread_per_recipient(recipient_id__any=user_ids).values_list("recipient_id", "count"),
    user_ids=[PLACEHOLDER_ID])


def unread_counts(user_ids):
    """{user id: unread count} in one query (users with none are left out)."""
    return dict(unread_counts_query.rows(user_ids=list(user_ids)))


def missed(user_id, since=None, after_id=None):
    """What a client missed, oldest first: unread ones of the last NOTIFY_INBOX_MISSED_DAYS days;
    with `since` (a time) or `after_id` (a notification), everything newer than that, read or not."""
    if since is None and after_id is None:
        return unread_missed([user_id])[user_id]
    rows = shown_in_app(Notification.objects.filter(recipient_id=user_id, created_at__gte=missed_horizon()))
    if after_id is not None:
        anchor = Notification.objects.filter(recipient_id=user_id, id=after_id).values("created_at", "id").first()
        if anchor is None:
            return None
        rows = rows.filter(created_at__gte=anchor["created_at"]).exclude(id=anchor["id"])
    else:
        rows = rows.filter(created_at__gt=since)
    rows = rows.order_by("-created_at", "-id")[: settings.NOTIFY_WS_MISSED_LIMIT]
    return [notification_message(n) for n in reversed(list(rows))]


def missed_horizon():
    return timezone.now() - timezone.timedelta(days=settings.NOTIFY_INBOX_MISSED_DAYS)


def unread_missed(user_ids):
    """{user id: missed()} without since/after for many users in one query: each one's newest
    NOTIFY_WS_MISSED_LIMIT unread ones of the horizon, oldest first."""
    newest_first = [F("created_at").desc(), F("id").desc()]
    rows = (shown_in_app(Notification.objects.filter(recipient_id__any=list(user_ids), created_at__gte=missed_horizon()))
            .unread().filter(archived_at__isnull=True).only(*MESSAGE_FIELDS)
            .annotate(rank=Window(RowNumber(), partition_by=F("recipient_id"), order_by=newest_first))
            .filter(rank__lte=settings.NOTIFY_WS_MISSED_LIMIT).order_by("recipient_id", *newest_first))
    found = {user_id: [] for user_id in user_ids}
    for notification in rows:
        found[notification.recipient_id].append(notification_message(notification))
    return {user_id: messages[::-1] for user_id, messages in found.items()}


class PublishingLoop:
    """One event loop per process, in a daemon thread, for publishing from sync code (workers,
    WSGI threads). async_to_sync would start a new loop, and so a new Redis connection, on every
    call; this one keeps the channel layer's connections open. Made again after a fork (Celery's
    prefork children)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pid, self.loop = None, None

    def run(self, coroutine, timeout):
        with self.lock:
            if self.pid != os.getpid():
                self.loop = asyncio.new_event_loop()
                threading.Thread(target=self.loop.run_forever, name="channel-layer-publisher", daemon=True).start()
                self.pid = os.getpid()
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


publishing_loop = PublishingLoop()


def batches(per_user):
    """[[user id, [messages]], ...] lists of at most NOTIFY_WS_RELAY_BATCH users each."""
    pushes = [[user_id, messages] for user_id, messages in per_user.items()]
    size = settings.NOTIFY_WS_RELAY_BATCH
    return [pushes[start:start + size] for start in range(0, len(pushes), size)]


async def send_batches(layer, per_user):
    for pushes in batches(per_user):
        await layer.group_send(RELAY_GROUP, {"type": "relay.push", "pushes": pushes})


def send_to_users(per_user):
    """Hand {user id: [messages]} to every connection of those users; never raises (the inbox has
    them anyway)."""
    layer = get_channel_layer()
    if layer is None or not per_user:
        return
    try:
        publishing_loop.run(send_batches(layer, per_user), timeout=PUBLISH_TIMEOUT)
    except Exception:
        logger.warning("could not push messages to %d user(s)' connections", len(per_user), exc_info=True)


def send_to_user(user_id, *messages):
    send_to_users({user_id: list(messages)})


def send_to_user_on_commit(user_id, *messages):
    transaction.on_commit(lambda: send_to_user(user_id, *messages))


def pushed_notifications(ids):
    """Notifications with their users' unread counts (`unread`), oldest first."""
    unread = unread_per_recipient(recipient_id=OuterRef("recipient_id")).values("count")
    return (Notification.objects.filter(id__any=ids).only(*MESSAGE_FIELDS)
            .annotate(unread=Coalesce(Subquery(unread), 0)).order_by("created_at", "id"))


pushed_notifications_query = CompiledQuery(pushed_notifications, ids=[PLACEHOLDER_UUID])


def publish_inapp_deliveries(sent):
    """The in-app provider's listener: [(delivery_id, message)] just recorded `delivered` (a
    chunk's at once): one query for their notifications with their users' unread counts, one
    hand-over to the channel layer."""
    ids = set(uuid_values(message.notification_id for _delivery_id, message in sent))
    per_user, counts = {}, {}
    for notification in pushed_notifications_query.instances(ids=list(ids)):
        per_user.setdefault(notification.recipient_id, []).append(notification_message(notification))
        counts[notification.recipient_id] = notification.unread
    for user_id, messages in per_user.items():
        messages.append(unread_count_message(counts[user_id]))
    transaction.on_commit(lambda: send_to_users(per_user))


def publish_mark(notification, status, at):
    """A read/seen/archived mark changed (over REST or WebSocket): every device hears it."""
    messages = [status_message(notification.id, status, at)]
    if status in ("read", "unread", "archived", "unarchived"):
        messages.append(unread_count_message(unread_count(notification.recipient_id)))
    send_to_user_on_commit(notification.recipient_id, *messages)


def publish_unread_count(user_id):
    send_to_user_on_commit(user_id, unread_count_message(unread_count(user_id)))


def on_mark_changed(sender, notification, status, at, **kwargs):
    publish_mark(notification, status, at)


def on_marks_changed(sender, user_id, **kwargs):
    publish_unread_count(user_id)
