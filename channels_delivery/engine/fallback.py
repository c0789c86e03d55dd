"""Fallback chains between channels, and what happens when a chain runs out.

A route is a chain of Delivery rows (same notification and route, ordered by position). Its
first row is queued; each later row waits as `pending`. The chain travels as Celery signatures:
each delivery task carries the next one as its `link_error` errback, so when a task fails for
good (a permanent error, or its last retry) Celery sends the next channel's task at once.

The rows, not the messages, decide: a failing task marks its row `failed` *before* it raises (Celery
sends errbacks before it calls on_failure), and the next task only starts if the row before it in
its chain really failed (activate). A duplicate errback, or a stray message for a pending row
whose predecessor got through, therefore sends nothing.
"""

import logging
from collections import defaultdict

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from channels_delivery import registry
from channels_delivery.engine import signals
from config.celery import message_priority
from notifications.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryGroups,
    DeliveryStatus,
    Notification,
    settle_notifications,
)

logger = logging.getLogger(__name__)

# A chain moves on when its current delivery ends in one of these.
FALLBACK_TRIGGERS = DeliveryGroups.FALLBACK_TRIGGERS


class NotRedrivable(Exception):
    pass


def chain_signature(rows, expires=None, priority=None):
    """The first row's task, with the rest of the chain nested as errbacks.

    expires: the notification's expires_at; a worker discards a message past it unrun.
    priority: the notification's priority, which picks every step's lane on the broker.
    """
    lane = message_priority(priority)
    chain = None
    for row in reversed(rows):
        # By name: the tasks module imports this one. Celery resolves the registered task.
        step = current_app.signature(registry.BY_NAME[row.channel].task_name, args=(str(row.id),), immutable=True)
        step.set(expires=expires, priority=lane)
        if chain is not None:
            step.on_error(chain)
        chain = step
    return chain


def enqueue_deliveries(deliveries, *, whole_plan=False):
    """Send each queued or retrying delivery's task with the pending rows after it as its chain.

    whole_plan: `deliveries` holds every row of their routes (as planning returns them), so the
    pending rows need no query. Otherwise a pending row passed in is sent too (its task starts
    only if the row before it failed): that is how a fallback whose errback was lost resumes.
    """
    starts = (DeliveryStatus.QUEUED, DeliveryStatus.RETRYING) if whole_plan else (
        DeliveryStatus.QUEUED, DeliveryStatus.RETRYING, DeliveryStatus.PENDING)
    heads = [d for d in deliveries if d.status in starts]
    if not heads:
        return
    if whole_plan:
        pool = deliveries
    else:
        pool = Delivery.objects.filter(
            notification_id__in={d.notification_id for d in heads}, status=DeliveryStatus.PENDING
        ).only("id", "notification_id", "route", "position", "channel", "status")
    if whole_plan:
        timing = {d.notification_id: (d.notification.expires_at, d.notification.priority) for d in heads}
    else:
        timing = {
            notification_id: (expires_at, priority)
            for notification_id, expires_at, priority in Notification.objects.filter(
                id__in={d.notification_id for d in heads}
            ).values_list("id", "expires_at", "priority")
        }
    waiting = defaultdict(list)
    for row in pool:
        if row.status == DeliveryStatus.PENDING:
            waiting[(row.notification_id, row.route)].append(row)
    # A pending row already rides in the chain of an earlier head of its route: send that one only.
    first = {}
    for head in heads:
        key = (head.notification_id, head.route)
        first[key] = min(first.get(key, head.position), head.position)
    heads = [h for h in heads if h.status != DeliveryStatus.PENDING or h.position == first[(h.notification_id, h.route)]]
    if whole_plan:
        heads = send_in_chunks(heads, timing)
    for head in heads:
        after = sorted(
            (row for row in waiting[(head.notification_id, head.route)] if row.position > head.position),
            key=lambda row: row.position,
        )
        # A retrying row's task expects to be a retry; its attempts so far stand in for the count.
        retries = max(head.attempt_count, 1) if head.status == DeliveryStatus.RETRYING else 0
        # A notification's expires_at becomes every step's: a worker discards it unrun after that.
        expires, priority = timing.get(head.notification_id, (None, None))
        chain_signature([head, *after], expires=expires, priority=priority).apply_async(retries=retries)


def chunk_size(channel):
    """How many first tries of `channel` one message carries (1: each its own)."""
    return settings.NOTIFY_DELIVERY_CHUNK_SIZES.get(channel, settings.NOTIFY_DELIVERY_CHUNK_SIZE)


def send_in_chunks(heads, timing):
    """First tries of the same channel and lane travel together, chunk_size(channel) per
    message (engine/chunks.py); returns the heads left to send one by one (a lone delivery, a
    side-by-side channel's). A chunk's chains are not in its message: a delivery that fails in
    the chunk starts its own (chunks.end, chunks.retry)."""
    groups = defaultdict(list)
    alone = []
    for head in heads:
        if (head.status == DeliveryStatus.QUEUED and not registry.kit(head.channel).side_by_side
                and chunk_size(head.channel) > 1):
            groups[(head.channel, message_priority(timing.get(head.notification_id, (None, None))[1]))].append(head)
        else:
            alone.append(head)
    for (channel, lane), members in groups.items():
        if len(members) < 2:
            alone.extend(members)
            continue
        task = registry.BY_NAME[channel].chunk_task_name
        size = chunk_size(channel)
        for start in range(0, len(members), size):
            ids = [str(member.id) for member in members[start:start + size]]
            current_app.signature(task, args=(ids,)).apply_async(priority=lane)
    return alone


def same_route(row):
    return Delivery.objects.filter(notification_id=row.notification_id, route=row.route)


def predecessor(row):
    return (
        same_route(row)
        .filter(position__lt=row.position)
        .exclude(status=DeliveryStatus.SKIPPED)
        .order_by("-position")
        .first()
    )


def successor(row):
    return same_route(row).filter(position__gt=row.position, status=DeliveryStatus.PENDING).order_by("position").first()


def successor_exists(delivery_id):
    row = Delivery.objects.filter(id=delivery_id).only("notification_id", "route", "position").first()
    return row is not None and successor(row) is not None


def stalled_fallbacks(older_than, limit=1000):
    """Pending deliveries whose predecessor failed before `older_than`: their errback was lost
    (a worker died between marking the row failed and sending it). enqueue_deliveries() resumes them."""
    failed_before = Delivery.objects.filter(
        notification=OuterRef("notification"), route=OuterRef("route"), position__lt=OuterRef("position"),
        status__in=FALLBACK_TRIGGERS, updated_at__lt=older_than,
    )
    candidates = Delivery.objects.filter(status=DeliveryStatus.PENDING).filter(Exists(failed_before))[:limit]
    return [row for row in candidates if getattr(predecessor(row), "status", None) in FALLBACK_TRIGGERS]


def activate(delivery_id):
    """Start a pending delivery if, and only if, the delivery before it in its chain failed."""
    with transaction.atomic():
        row = Delivery.objects.select_for_update().filter(id=delivery_id, status=DeliveryStatus.PENDING).first()
        if row is None:
            return False
        before = predecessor(row)
        if before is None or before.status not in FALLBACK_TRIGGERS:
            logger.info("delivery %s stays pending: the %s before it is %s", delivery_id,
                        before and before.channel, before and before.status)
            return False
        reason = f"fallback from {before.channel}: {before.reason or before.last_error or before.status}"
        Delivery.objects.filter(id=row.id).move(DeliveryStatus.QUEUED, source=DeliveryStatus.PENDING, reason=reason)
    logger.info("delivery %s fell back: %s takes over (%s; notification %s)", delivery_id, row.channel, reason,
                row.notification_id)
    signals.fell_back.send(Delivery, from_channel=before.channel, to_channel=row.channel)
    return True


def fail(delivery_id, reason, error=""):
    """A delivery is done trying: mark it failed (before Celery sends the errback) and note the hop."""
    updated = Delivery.objects.filter(id=delivery_id).move(
        DeliveryStatus.FAILED, source=DeliveryGroups.LIVE, reason=reason, last_error=error, next_retry_at=None
    )
    if not updated:
        return
    row = Delivery.objects.get(id=delivery_id)
    after = successor(row)
    logger.info("delivery %s failed: %s, %s (notification %s)%s", delivery_id, row.channel, reason,
                row.notification_id, f"; next in its chain: {after.channel}" if after else "")
    if after is not None:
        last = DeliveryAttempt.objects.filter(delivery_id=delivery_id).order_by("-started_at", "-id").first()
        if last is not None:
            hop = f"falling back to {after.channel}"
            note = f"{last.note[:300 - len(hop) - 2]}; {hop}" if last.note else hop
            DeliveryAttempt.objects.filter(id=last.id).update(note=note)
    else:
        signals.dead_lettered.send(Delivery, channel=row.channel)
        settle_notifications([row.notification_id])


def continue_after(row):
    """A provider reported a sent delivery undelivered or bounced: run the rest of its chain."""
    after = successor(row)
    if after is not None:
        rest = list(same_route(row).filter(position__gte=after.position, status=DeliveryStatus.PENDING))
        expires, priority = Notification.objects.filter(id=row.notification_id).values_list(
            "expires_at", "priority"
        ).first() or (None, None)
        transaction.on_commit(lambda: chain_signature(rest, expires=expires, priority=priority).apply_async())
    settle_notifications([row.notification_id])


def redrive(delivery_id, by):
    """Queue a failed delivery again; the failed rows after it in its chain wait behind it again."""
    with transaction.atomic():
        row = Delivery.objects.select_for_update().get(id=delivery_id)
        if row.status not in FALLBACK_TRIGGERS:
            raise NotRedrivable(f"Only failed, undelivered or bounced deliveries can be re-driven; this one is {row.status}.")
        same_route(row).filter(position__gt=row.position).move(
            DeliveryStatus.PENDING, source=FALLBACK_TRIGGERS, reason=f"waiting: chain re-driven from {row.channel}",
            next_retry_at=None,
        )
        Delivery.objects.filter(id=row.id).move(
            DeliveryStatus.QUEUED, source=FALLBACK_TRIGGERS, reason=f"re-driven by {by}", next_retry_at=None
        )
        settle_notifications([row.notification_id])
        row.status = DeliveryStatus.QUEUED
        transaction.on_commit(lambda: enqueue_deliveries([row]))
    logger.info("delivery %s re-driven by %s", delivery_id, by)
    return row
