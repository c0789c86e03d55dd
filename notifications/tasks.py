import json
import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction

from channels_delivery.engine import attachments
from channels_delivery.engine.fallback import enqueue_deliveries
from channels_delivery.engine.poison import PoisonGuardedTask
from notifications import lifecycle
from notifications.clock import digests, escalation
from notifications.models import (
    PLACEHOLDER_UUID,
    Attachment,
    Broadcast,
    CompiledQuery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    copy_create,
    derived_statuses,
    uuid_values,
)
from notifications.planning import audiences, dispatch, planner
from notifications.planning.preferences import PreferenceBook

logger = logging.getLogger(__name__)


class DispatchTask(PoisonGuardedTask):
    def park(self, notification_ids, deaths):
        """A batch that killed its worker: each notification is dispatched again on its own, so
        the innocent ones go out and only the poisonous one dies again; one parked alone fails."""
        if len(notification_ids) > 1:
            info = self.request.delivery_info or {}
            for notification_id in notification_ids:  # back on the queue the batch came from
                self.apply_async(([notification_id],), queue=info.get("routing_key") or None,
                                 priority=info.get("priority"))
            return f"split into {len(notification_ids)} messages"
        return lifecycle.park(notification_ids, f"poison message: its dispatch worker died {deaths} times; parked")


@shared_task(name="notifications.dispatch_notifications", base=DispatchTask)
def dispatch_notifications(notification_ids):
    """Plan the deliveries of pending notifications and enqueue each channel's task."""
    return plan_and_enqueue(notification_ids)


@shared_task(name="notifications.drain_dispatch")
def drain_dispatch(lane):
    """Plan the sends waiting in this lane's list, batch after batch, until none waits
    (planning/dispatch.py). A batch that fails to plan goes on as one dispatch message per
    notification, so one bad row holds up no other (and meets the poison guard alone)."""
    deadline = time.monotonic() + settings.NOTIFY_DISPATCH_DRAIN_SECONDS
    planned = 0
    # Since when the sends this drain takes next have waited at most: it emptied the list then.
    emptied = time.monotonic()
    while True:
        ids, left = dispatch.take_waiting(lane)
        if not ids and settings.NOTIFY_DISPATCH_LINGER > 0:
            # Linger a moment for the next send: at a steady rate it comes before the lane sleeps,
            # and costs no wake-up task.
            ids, left = dispatch.await_waiting(lane, settings.NOTIFY_DISPATCH_LINGER)
            emptied = time.monotonic()  # the first one came just now
        if not ids:
            if dispatch.may_sleep(lane):
                return planned
            emptied = time.monotonic()
            continue
        if settings.NOTIFY_DISPATCH_GATHER and len(ids) < dispatch.DISPATCH_BATCH:
            # Planning costs mostly per batch: a few ms of gathering buy a larger one. The window
            # counts from the oldest send's arrival, so the time they waited while the batch
            # before was planned counts as gathering.
            pause = emptied + settings.NOTIFY_DISPATCH_GATHER - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            more, left = dispatch.take_waiting(lane, dispatch.DISPATCH_BATCH - len(ids))
            ids += more
        # What is left now waited since before this take; otherwise the list is empty from here.
        emptied = time.monotonic() if not left else float("-inf")
        if left >= dispatch.DISPATCH_BATCH:  # a backlog: whole batches go to other dispatch processes too
            hand_on([ids], lane)
        else:
            try:
                planned += plan_and_enqueue(ids)
            except Exception:
                logger.exception("planning %d coalesced notifications failed; each is dispatched on its own", len(ids))
                hand_on([[i] for i in ids], lane)
        if time.monotonic() > deadline:  # a fresh task carries on (the lane stays awake)
            dispatch.wake(lane)
            return planned


def hand_on(batches, lane):
    try:
        for batch in batches:
            dispatch_notifications.apply_async((batch,), priority=lane)
    except Exception:
        dispatch.give_back([i for batch in batches for i in batch], lane)
        raise


# Dispatch's read of a batch, compiled once per process: at 100 sends/s a batch holds two or three
# notifications, and building this query was a sixth of dispatch's CPU (py-spy).
pending_batch_query = CompiledQuery(
    lambda ids: Notification.objects.select_for_update(skip_locked=True, of=("self",))
    .select_related("recipient", "recipient__profile", "category")
    .filter(id__any=ids, status=NotificationStatus.PENDING),
    ids=[PLACEHOLDER_UUID],
)


batch_attachments_query = CompiledQuery(
    lambda ids: Attachment.objects.filter(notification_id__any=ids), ids=[PLACEHOLDER_UUID])


def read_attachments_and_broadcasts(notifications):
    """What planning reads beyond the batch's rows, one query each for the whole batch: every
    notification's attachments (the list attachment_rows() gives) and its broadcast (the payload).
    prefetch_related() built both queries anew for every batch: 1.1 ms of CPU for a batch of two,
    more than the batch's own read."""
    attachments_of = {notification.id: [] for notification in notifications}
    if notifications:
        for attachment in batch_attachments_query.instances(ids=list(attachments_of)):
            attachments_of[attachment.notification_id].append(attachment)
    broadcast_ids = {notification.broadcast_id for notification in notifications if notification.broadcast_id}
    broadcasts = Broadcast.objects.in_bulk(broadcast_ids) if broadcast_ids else {}
    broadcast_field = Notification._meta.get_field("broadcast")
    for notification in notifications:
        notification.__dict__[Notification.ATTACHMENTS] = attachments_of[notification.id]
        if notification.broadcast_id:
            broadcast_field.set_cached_value(notification, broadcasts.get(notification.broadcast_id))


def plan_and_enqueue(notification_ids):
    with transaction.atomic():
        notifications = pending_batch_query.objects(ids=uuid_values(notification_ids))
        read_attachments_and_broadcasts(notifications)
        notifications = digests.hold_for_digest(notifications)  # clock: digest categories wait
        attachments.fetch_pending(notifications)  # channels: URL attachments, through the outbound guard
        preferences = PreferenceBook.load(n.recipient_id for n in notifications)
        planner.prefetch_contact_points(notifications)
        deliveries = [d for notification in notifications for d in planner.plan(notification, preferences)]
        copy_create(deliveries)
        # Planning wrote each decision trace; a deferred notification (quiet hours) is `scheduled`,
        # every other one takes the status its new deliveries add up to (settle_notifications'
        # rule, written by the same UPDATE: these rows are locked, still `pending`).
        planned = [n for n in notifications if n.status != NotificationStatus.SCHEDULED]
        statuses = derived_statuses([n.id for n in planned], deliveries)
        for notification in planned:
            notification.status = statuses[notification.id]
        save_plans(notifications)
        queued = [d for d in deliveries if d.status == DeliveryStatus.QUEUED]
        escalation.plan_escalations(queued)  # clock: unread in-app goes out again later
        transaction.on_commit(lambda: enqueue_deliveries(deliveries, whole_plan=True))
    return len(deliveries)


def save_plans(notifications):
    """Each notification's status, scheduled_at and trace as planning left them, in one UPDATE
    from a JSON document of the rows (bulk_update's CASE per row and field costs more than
    planning; a VALUES list's four parameters per row cost 7 ms of CPU per 500, the document 2)."""
    if not notifications:
        return
    rows = json.dumps([
        {"id": str(n.id), "status": n.status, "trace": n.trace,
         "scheduled_at": n.scheduled_at.isoformat() if n.scheduled_at else None}  # to the microsecond
        for n in notifications
    ], cls=DjangoJSONEncoder)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Notification._meta.db_table} AS n SET status = v.status, scheduled_at = v.scheduled_at, "
            "trace = v.trace FROM jsonb_to_recordset(%s::jsonb) AS v(id uuid, status text, scheduled_at timestamptz, "
            "trace jsonb) WHERE n.id = v.id",
            [rows],
        )


@shared_task(name="notifications.plan_broadcast")
def plan_broadcast(broadcast_id):
    """Fix a broadcast's chunks and fan each out as its own task (re-running re-sends only the rest)."""
    numbers = audiences.plan(broadcast_id)
    for number in numbers:
        fan_out_broadcast_chunk.delay(broadcast_id, number)
    return len(numbers)


@shared_task(name="notifications.fan_out_broadcast_chunk")
def fan_out_broadcast_chunk(broadcast_id, number):
    return audiences.fan_out_chunk(broadcast_id, number)

