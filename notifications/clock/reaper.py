"""Self-healing: deliveries whose broker message was lost or whose worker died are put back.

Postgres is the truth, so whatever the broker forgot (a flushed Redis, a SIGKILLed worker's
prefetched and unacked messages) is found here by status and age:
- `queued` too long: the message was lost; send another (the task's claim makes a duplicate
  message harmless: only one of them moves the row to `sending`);
- `sending` too long: the worker died mid-call; a conditional UPDATE moves it back to `queued`
  only if it is still `sending` since the same moment, and the threshold stays above the task's
  hard time limit, so no live task is overtaken;
- `retrying` long past next_retry_at: the retry message was lost;
- notifications `pending` too long: their dispatch message was lost (dispatch is idempotent).
Each re-enqueued delivery gets a DeliveryAttempt row (outcome `requeued`) saying why.

A row that is stuck again right after each re-enqueue (its message kills every worker that runs
it, so no attempt is ever recorded in between) is not re-enqueued forever: after
NOTIFY_REAPER_MAX_REQUEUES re-enqueues in a row it fails with the reason, a dead letter an
operator can look at and re-drive; a notification re-dispatched that often is failed likewise.
"""

import datetime
import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from channels_delivery.engine import fallback
from channels_delivery.engine.fallback import enqueue_deliveries, stalled_fallbacks
from notifications import lifecycle
from notifications.clock.cleanup import expire_overdue
from notifications.models import (
    AttemptOutcome,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)
from notifications.planning import dispatch
from notifications.planning.dispatch import dispatch_rows_on_commit

logger = logging.getLogger(__name__)

REQUEUE_SQL = f"""
UPDATE {Delivery._meta.db_table} SET status = %s, updated_at = %s
WHERE id = ANY(%s) AND status = %s AND updated_at < %s
RETURNING id
"""


def seconds(value):
    return datetime.timedelta(seconds=value)


def requeues_in_a_row(delivery_ids):
    """{id: re-enqueues since the delivery's last real attempt}: what the reaper has already
    tried on rows that never got as far as recording an attempt."""
    counts = dict.fromkeys(delivery_ids, 0)
    attempts = DeliveryAttempt.objects.filter(delivery_id__in=delivery_ids).order_by("delivery_id", "started_at", "id")
    for delivery_id, outcome in attempts.values_list("delivery_id", "outcome"):
        counts[delivery_id] = counts[delivery_id] + 1 if outcome == AttemptOutcome.REQUEUED else 0
    return counts


def give_up_on_repeat_offenders(candidates, status):
    """Fail the candidates the reaper has re-enqueued too often already; returns the others."""
    counts = requeues_in_a_row([c[0] for c in candidates])
    limit = settings.NOTIFY_REAPER_MAX_REQUEUES
    for delivery_id, count in counts.items():
        if count >= limit:
            reason = (f"reaper gave up after {count} re-enqueues: stuck in {status} again each time "
                      "(a message that kills its worker?)")
            fallback.fail(delivery_id, reason, reason)
            logger.error("delivery %s: %s", delivery_id, reason)
    return [c for c in candidates if counts[c[0]] < limit]


def requeue(status, older_than, now, limit):
    """Move rows stuck in `status` since before `older_than` back to queued; returns {id: age}."""
    candidates = list(
        Delivery.objects.filter(status=status, updated_at__lt=older_than)
        .order_by("updated_at")
        .values_list("id", "updated_at", "attempt_count")[:limit]
    )
    candidates = give_up_on_repeat_offenders(candidates, status)
    if not candidates:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            REQUEUE_SQL,
            [DeliveryStatus.QUEUED, now, [c[0] for c in candidates], status, older_than],
        )
        moved = {row[0] for row in cursor.fetchall()}
    return {c[0]: (int((now - c[1]).total_seconds()), c[2]) for c in candidates if c[0] in moved}


def overdue_retries(older_than, now, limit):
    ids = list(
        Delivery.objects.filter(status=DeliveryStatus.RETRYING)
        .annotate(due=Coalesce("next_retry_at", "updated_at"))
        .filter(due__lt=older_than)
        .values_list("id", "updated_at", "attempt_count")[:limit]
    )
    found = {}
    for delivery_id, updated_at, attempt_count in ids:
        # Conditional: a retry that ran meanwhile changed updated_at, and is left alone.
        if Delivery.objects.filter(id=delivery_id, status=DeliveryStatus.RETRYING, updated_at=updated_at).note(
            next_retry_at=None
        ):
            found[delivery_id] = (int((now - updated_at).total_seconds()), attempt_count)
    return found


def reap(now=None, queued_after=None, sending_after=None, retrying_after=None, pending_after=None, limit=1000):
    now = now or timezone.now()
    queued_after = settings.NOTIFY_REAPER_QUEUED_AFTER if queued_after is None else queued_after
    sending_after = settings.NOTIFY_REAPER_SENDING_AFTER if sending_after is None else sending_after
    retrying_after = settings.NOTIFY_REAPER_RETRYING_AFTER if retrying_after is None else retrying_after
    pending_after = settings.NOTIFY_REAPER_PENDING_AFTER if pending_after is None else pending_after
    expire_overdue(now)
    report = {}
    with transaction.atomic():
        found = {
            "sending": requeue(DeliveryStatus.SENDING, now - seconds(sending_after), now, limit),
            "queued": requeue(DeliveryStatus.QUEUED, now - seconds(queued_after), now, limit),
            "retrying": overdue_retries(now - seconds(retrying_after), now, limit),
        }
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                delivery_id=delivery_id, number=attempt_count, started_at=now, outcome=AttemptOutcome.REQUEUED,
                note=f"re-enqueued by reaper after {age} s in {status}",
            )
            for status, rows in found.items()
            for delivery_id, (age, attempt_count) in rows.items()
        )
        ids = [delivery_id for rows in found.values() for delivery_id in rows]
        deliveries = list(Delivery.objects.filter(id__in=ids).select_related("notification"))
        transaction.on_commit(lambda: enqueue_deliveries(deliveries))
        report = {status: len(rows) for status, rows in found.items()}
    report["pending notifications"] = redispatch_pending(now - seconds(pending_after), limit)
    report["sends waiting in a sleeping lane"] = dispatch.wake_stalled_lanes()
    report["stalled fallbacks"] = resume_stalled_fallbacks(now - seconds(queued_after), limit)
    if any(report.values()):
        logger.warning("reaper re-enqueued %s", ", ".join(f"{n} {what}" for what, n in report.items()))
    return report


def resume_stalled_fallbacks(older_than, limit):
    """Pending chain steps whose predecessor failed but whose errback message was lost."""
    rows = stalled_fallbacks(older_than, limit)
    if rows:
        enqueue_deliveries(rows)
    return len(rows)


def redispatch_pending(older_than, limit):
    """Dispatch stuck pending notifications again, each time noted in its trace; one re-dispatched
    NOTIFY_REAPER_MAX_REQUEUES times already is failed (lifecycle.park) instead."""
    with transaction.atomic():
        stuck = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(status=NotificationStatus.PENDING)
            .annotate(since=Coalesce("scheduled_at", "created_at"))
            .filter(since__lt=older_than)
            .only("id", "priority", "trace")[:limit]
        )
        worn_out = [n.id for n in stuck if redispatches(n) >= settings.NOTIFY_REAPER_MAX_REQUEUES]
        if worn_out:
            lifecycle.park(worn_out, f"reaper gave up after {settings.NOTIFY_REAPER_MAX_REQUEUES} re-dispatches")
        again = [n for n in stuck if n.id not in set(worn_out)]
        stamp = {"at": timezone.now().isoformat(), "event": "redispatched"}
        for notification in again:
            notification.trace = [*(notification.trace or []), stamp]
        Notification.objects.bulk_update(again, ["trace"])
        dispatch_rows_on_commit([(n.id, n.priority) for n in again])
    return len(again)


def redispatches(notification):
    return sum(1 for event in notification.trace or [] if event.get("event") == "redispatched")
