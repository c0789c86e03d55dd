"""What can happen to a notification after it was sent in: cancelling it, and resending it."""

from django.db import transaction
from django.utils import timezone

from channels_delivery.engine.fallback import enqueue_deliveries
from notifications.models import (
    Delivery,
    DeliveryGroups,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    Resend,
    settle_notifications,
)

# A notification may be cancelled while nothing of it has gone out.
CANCELLABLE = [
    NotificationStatus.SCHEDULED, NotificationStatus.PENDING, NotificationStatus.BATCHED, NotificationStatus.DISPATCHED,
]
from notifications.planning import planner


class NotAllowed(Exception):
    """The notification's state forbids the change; the message says why."""


@transaction.atomic
def cancel(notification_id):
    """Cancel a notification that has not gone out, with its waiting deliveries."""
    notification = Notification.objects.select_for_update().get(id=notification_id)
    if notification.status == NotificationStatus.CANCELLED:
        return notification
    if notification.status not in CANCELLABLE:
        raise NotAllowed(f"The notification is already {notification.status}.")
    if notification.deliveries.filter(status__in=DeliveryGroups.GONE_OUT).exists():
        raise NotAllowed("The notification has already been sent on at least one channel.")
    notification.deliveries.move(
        DeliveryStatus.CANCELLED, source=DeliveryGroups.OPEN, reason="cancelled by the sender", next_retry_at=None
    )
    notification.status = NotificationStatus.CANCELLED
    notification.save(update_fields=["status"])
    return notification


@transaction.atomic
def resend(notification_id, *, reason, requested_by=None, client=None):
    """Plan a notification's failed and skipped channels again, as new attempts of the same rows.

    A route (fallback chain) that already got a message out is left alone; in the others, each
    failed or skipped delivery takes its fresh plan (contact points may have appeared since), so
    the head of a chain is queued and the rest wait as pending. Returns the Resend record and the
    deliveries queued now.
    """
    notification = Notification.objects.select_for_update().select_related("recipient").get(id=notification_id)
    if notification.status in (NotificationStatus.CANCELLED, NotificationStatus.EXPIRED):
        raise NotAllowed(f"The notification is {notification.status}.")
    deliveries = list(notification.deliveries.select_for_update())
    done_routes = {d.route for d in deliveries if d.status in DeliveryGroups.GONE_OUT}
    redo = [d for d in deliveries if d.status in DeliveryGroups.RESENDABLE and d.route not in done_routes]
    if not redo:
        raise NotAllowed("No failed or skipped channel to resend.")
    now = timezone.now()
    status_before = notification.status
    planner.record(notification, now, event="resend", reason=reason, channels=[d.channel for d in redo])
    fresh = {d.channel: d for d in planner.plan(notification, now=now)}
    if notification.status == NotificationStatus.SCHEDULED and status_before != NotificationStatus.SCHEDULED:
        raise NotAllowed("The recipient's quiet hours defer this notification; resend it after they end.")
    moves = {}
    for delivery in redo:
        planned = fresh.get(delivery.channel)
        if planned is None:
            delivery.status, delivery.reason = DeliveryStatus.SKIPPED, "not planned on resend"
        else:
            delivery.status, delivery.message = planned.status, planned.message
            delivery.template_version = planned.template_version
            delivery.reason = (planned.reason or f"resent: {reason}")[:500]
        delivery.last_error, delivery.next_retry_at = "", None
        moves.setdefault(delivery.status, []).append(delivery.id)
    # The fresh plan's content first, then each row's new state through the one transition.
    Delivery.objects.bulk_update(redo, ["message", "template_version", "reason", "last_error", "next_retry_at"])
    for status, ids in moves.items():
        Delivery.objects.filter(id__in=ids).move(status, source=DeliveryGroups.RESENDABLE)
    queued = [d for d in redo if d.status == DeliveryStatus.QUEUED]
    record = Resend.objects.create(
        notification=notification,
        requested_by=requested_by,
        client=client,
        reason=reason,
        channels=[d.channel for d in redo],
    )
    notification.save(update_fields=["status", "trace"])
    settle_notifications([notification.id], deliveries)
    if queued:
        transaction.on_commit(lambda: enqueue_deliveries(queued))
    return record, queued


@transaction.atomic
def park(notification_ids, reason):
    """Give up on pending notifications that cannot be dispatched (their message kept killing
    workers): failed, with the reason in their trace, so the reaper stops sending them again."""
    now = timezone.now()
    parked = list(Notification.objects.select_for_update().filter(id__in=notification_ids,
                                                                   status=NotificationStatus.PENDING))
    for notification in parked:
        notification.trace = [*(notification.trace or []), {"at": now.isoformat(), "event": "parked", "reason": reason}]
    Notification.objects.bulk_update(parked, ["trace"])
    # No delivery was planned: what that adds up to (failed) is set in the one place statuses are.
    settle_notifications([notification.id for notification in parked], deliveries=[])
    return len(parked)
