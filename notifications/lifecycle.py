"""What can happen to a notification after it was sent in: cancelling it, and resending it."""

from django.db import transaction
from django.utils import timezone

from channels_delivery import enqueue_deliveries

from . import planning
from .models import Delivery, DeliveryStatus, Notification, NotificationStatus, Resend

CANCELLABLE_DELIVERIES = [DeliveryStatus.PENDING, DeliveryStatus.QUEUED, DeliveryStatus.RETRYING]
GONE_OUT = [
    DeliveryStatus.SENDING,
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.BOUNCED,
    DeliveryStatus.UNDELIVERED,
]
RESENDABLE = [DeliveryStatus.FAILED, DeliveryStatus.SKIPPED]


class NotAllowed(Exception):
    """The notification's state forbids the change; the message says why."""


@transaction.atomic
def cancel(notification_id):
    """Cancel a notification that has not gone out, with its waiting deliveries."""
    notification = Notification.objects.select_for_update().get(id=notification_id)
    if notification.status == NotificationStatus.CANCELLED:
        return notification
    if notification.status in (NotificationStatus.DELIVERED, NotificationStatus.FAILED, NotificationStatus.EXPIRED):
        raise NotAllowed(f"The notification is already {notification.status}.")
    if notification.deliveries.filter(status__in=GONE_OUT).exists():
        raise NotAllowed("The notification has already been sent on at least one channel.")
    notification.deliveries.filter(status__in=CANCELLABLE_DELIVERIES).update(
        status=DeliveryStatus.CANCELLED, reason="cancelled by the sender", next_retry_at=None
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
    done_routes = {d.route for d in deliveries if d.status in GONE_OUT}
    redo = [d for d in deliveries if d.status in RESENDABLE and d.route not in done_routes]
    if not redo:
        raise NotAllowed("No failed or skipped channel to resend.")
    now = timezone.now()
    status_before = notification.status
    planning.record(notification, now, event="resend", reason=reason, channels=[d.channel for d in redo])
    fresh = {d.channel: d for d in planning.plan(notification, now=now)}
    if notification.status == NotificationStatus.SCHEDULED and status_before != NotificationStatus.SCHEDULED:
        raise NotAllowed("The recipient's quiet hours defer this notification; resend it after they end.")
    for delivery in redo:
        delivery.updated_at = now
        planned = fresh.get(delivery.channel)
        if planned is None:
            delivery.status, delivery.reason = DeliveryStatus.SKIPPED, "not planned on resend"
            continue
        delivery.status, delivery.message = planned.status, planned.message
        delivery.template_version = planned.template_version
        delivery.reason = planned.reason or f"resent: {reason}"[:500]
        delivery.last_error, delivery.next_retry_at = "", None
    Delivery.objects.bulk_update(
        redo, ["status", "message", "template_version", "reason", "last_error", "next_retry_at", "updated_at"]
    )
    queued = [d for d in redo if d.status == DeliveryStatus.QUEUED]
    record = Resend.objects.create(
        notification=notification,
        requested_by=requested_by,
        client=client,
        reason=reason,
        channels=[d.channel for d in redo],
    )
    if queued:
        notification.status = NotificationStatus.DISPATCHED
        transaction.on_commit(lambda: enqueue_deliveries(queued))
    notification.save(update_fields=["status", "trace"])
    return record, queued


@transaction.atomic
def park(notification_ids, reason):
    """Give up on pending notifications that cannot be dispatched (their message kept killing
    workers): failed, with the reason in their trace, so the reaper stops sending them again."""
    now = timezone.now()
    parked = list(Notification.objects.select_for_update().filter(id__in=notification_ids,
                                                                   status=NotificationStatus.PENDING))
    for notification in parked:
        notification.status = NotificationStatus.FAILED
        notification.trace = [*(notification.trace or []), {"at": now.isoformat(), "event": "parked", "reason": reason}]
    Notification.objects.bulk_update(parked, ["status", "trace"])
    return len(parked)
