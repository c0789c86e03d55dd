"""Escalation: an in-app notification still unread after its category's delay goes out again on
the category's escalate_to channel. The wait lives in Postgres (Escalation.due_at), not in a
long ETA task; reading the notification before due_at cancels it."""

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from channels_delivery.engine.fallback import enqueue_deliveries
from notifications.models import (
    Channel,
    Delivery,
    Escalation,
    Notification,
    NotificationStatus,
    settle_notifications,
)
from notifications.models import categories as all_categories
from notifications.planning import planner
from notifications.planning.preferences import PreferenceBook

logger = logging.getLogger(__name__)


def plan_escalations(deliveries, now=None):
    """For notifications just planned with an in-app delivery, create the Escalation rows their
    categories ask for (inside the dispatch transaction)."""
    inapp = {d.notification_id: d.notification for d in deliveries if d.channel == Channel.INAPP}
    if not inapp:
        return []
    wanted = {n.category_id for n in inapp.values()}
    categories = {key: c for key, c in all_categories().items()
                  if key in wanted and c.escalate_after_minutes is not None and c.escalate_to}
    if not categories:
        return []
    planned = {(d.notification_id, d.channel) for d in deliveries}
    now = now or timezone.now()
    escalations = []
    for notification in inapp.values():
        category = categories.get(notification.category_id)
        if category is None or (notification.id, category.escalate_to) in planned:
            continue  # the escalation channel is already part of the plan
        delay = datetime.timedelta(seconds=category.escalate_after_minutes * settings.NOTIFY_CLOCK_MINUTE_SECONDS)
        escalations.append(Escalation(notification=notification, channel=category.escalate_to, due_at=now + delay))
    return Escalation.objects.bulk_create(escalations, ignore_conflicts=True)


def escalate_due(now=None, chunk=200):
    """Fire due escalations of unread notifications; cancel the ones read (or ended) in time."""
    now = now or timezone.now()
    fired = cancelled = 0
    with transaction.atomic():
        due = list(
            Escalation.objects.select_for_update(skip_locked=True, of=("self", "notification"))
            .select_related("notification__recipient", "notification__broadcast")
            .filter(status=Escalation.Status.PENDING, due_at__lte=now)
            .order_by("due_at")[:chunk]
        )
        preferences = PreferenceBook.load({e.notification.recipient_id for e in due})
        created, traced = [], []
        for escalation in due:
            delivery, outcome = escalation_delivery(escalation, preferences, now)
            if isinstance(outcome, datetime.datetime):
                # Quiet hours: the escalation waits for the window to end, still cancelled by a read.
                escalation.due_at, escalation.reason = outcome, "deferred by quiet hours"
                traced.append(escalation.notification)
                continue
            escalation.done_at = now
            if delivery is None:
                escalation.status, escalation.reason = Escalation.Status.CANCELLED, outcome
                cancelled += 1
            else:
                escalation.status, escalation.reason = Escalation.Status.SENT, f"unread after {outcome}"
                created.append(delivery)
                fired += 1
            traced.append(escalation.notification)
        Delivery.objects.bulk_create(created)
        Escalation.objects.bulk_update(due, ["status", "reason", "done_at", "due_at"])
        Notification.objects.bulk_update(traced, ["trace"])
        settle_notifications({d.notification_id for d in created})
        transaction.on_commit(lambda: enqueue_deliveries(created))
    if fired or cancelled:
        logger.info("escalation: %d sent, %d cancelled", fired, cancelled)
    return {"sent": fired, "cancelled": cancelled}


def escalation_delivery(escalation, preferences, now):
    """(Delivery, how long it waited), (None, the reason it does not escalate), or (None, a
    moment) when quiet hours defer it. Planning decides, as for any send."""
    notification = escalation.notification
    if notification.read_at is not None:
        return None, "read in time"
    if notification.status in (NotificationStatus.CANCELLED, NotificationStatus.EXPIRED):
        return None, f"notification {notification.status}"
    if notification.expires_at is not None and notification.expires_at <= now:
        return None, "notification expired"
    if Delivery.objects.filter(notification=notification, channel=escalation.channel).exists():
        return None, f"already planned on {escalation.channel}"
    route = (Delivery.objects.filter(notification=notification).aggregate(r=Max("route"))["r"] or 0) + 1
    delivery, until = planner.plan_escalation(notification, escalation.channel, route, preferences, now)
    if until is not None:
        return None, until
    if delivery is None:
        return None, f"not planned on {escalation.channel}: {notification.trace[-1]['reason']}"
    return delivery, f"{int((now - escalation.created_at).total_seconds())} s"
