"""Housekeeping on a clock: expire what is past expires_at, purge what is past retention, and tell
operators about dead letters. Deletes run in id chunks so no statement holds locks for long."""

import datetime
import logging
from collections import Counter

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from notifications.models import (
    AuditEvent,
    Category,
    Delivery,
    DeliveryAttempt,
    DeliveryGroups,
    DeliveryStatus,
    IdempotencyRecord,
    Notification,
    NotificationStatus,
)
from notifications.planning.sending import store_and_dispatch

logger = logging.getLogger(__name__)

WAITING = [NotificationStatus.SCHEDULED, NotificationStatus.PENDING, NotificationStatus.BATCHED]


def expire_overdue(now=None):
    """Notifications past expires_at stop: waiting ones become `expired`, and their deliveries not
    yet sent are skipped with reason "expired" (a task already queued for one finds it skipped)."""
    now = now or timezone.now()
    overdue = Notification.objects.filter(expires_at__lte=now)
    with transaction.atomic():
        skipped = Delivery.objects.filter(notification__in=overdue).move(
            DeliveryStatus.SKIPPED, source=DeliveryGroups.OPEN, reason="expired", next_retry_at=None
        )
        expired = overdue.filter(status__in=WAITING).update(status=NotificationStatus.EXPIRED)
    if skipped or expired:
        logger.info("expired %d notifications and skipped %d of their deliveries", expired, skipped)
    return {"notifications": expired, "deliveries": skipped}


def delete_in_chunks(queryset, batch):
    """Delete the rows of `queryset` a chunk of ids at a time; returns {model label: rows}."""
    removed = Counter()
    model = queryset.model
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch])
        if not ids:
            return dict(removed)
        _total, per_model = model.objects.filter(pk__in=ids).delete()
        removed.update(per_model)


def purge(now=None, batch=None):
    now = now or timezone.now()
    batch = batch or settings.NOTIFY_CLEANUP_BATCH
    days = datetime.timedelta(days=1)
    report = {
        "delivery attempts": delete_in_chunks(
            DeliveryAttempt.objects.filter(started_at__lt=now - settings.NOTIFY_RETENTION_ATTEMPTS_DAYS * days), batch
        ),
        "read notifications": delete_in_chunks(
            Notification.objects.filter(read_at__lt=now - settings.NOTIFY_RETENTION_READ_DAYS * days), batch
        ),
        "expired notifications": delete_in_chunks(
            Notification.objects.filter(
                status=NotificationStatus.EXPIRED, expires_at__lt=now - settings.NOTIFY_RETENTION_EXPIRED_DAYS * days
            ),
            batch,
        ),
        "idempotency keys": delete_in_chunks(IdempotencyRecord.objects.expired(now), batch),
        "audit events": delete_in_chunks(
            AuditEvent.objects.filter(created_at__lt=now - settings.NOTIFY_RETENTION_AUDIT_DAYS * days), batch
        ),
    }
    for what, removed in report.items():
        if removed:  # an hour with nothing past retention says nothing
            logger.info("purge %s: removed %s", what, ", ".join(f"{n} {label}" for label, n in removed.items()))
    return report


def dead_letter_counts(since):
    counts = Counter(
        (channel, (reason or last_error or "unknown")[:120])
        for channel, reason, last_error in Delivery.objects.dead_letters()
        .filter(updated_at__gte=since)
        .values_list("channel", "reason", "last_error")
        .iterator()
    )
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def operators():
    """OPERATOR_EMAILS when set, else active staff with an email. A configured address is reached
    through a recipient of its own (inactive, named `operator:<address>`), never through a user
    whose email happens to match: users set their own email unverified. The summary then travels
    the normal, logged and retried email path."""
    User = get_user_model()
    if not settings.OPERATOR_EMAILS:
        return list(User.objects.filter(is_staff=True, is_active=True).exclude(email="").order_by("pk"))
    recipients = []
    for address in dict.fromkeys(settings.OPERATOR_EMAILS):
        user, created = User.objects.get_or_create(
            username=f"operator:{address}"[:150], defaults={"email": address, "is_active": False}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        elif user.email != address or user.is_active:
            user.email, user.is_active = address, False
            user.save(update_fields=["email", "is_active"])
        recipients.append(user)
    return recipients


def send_dead_letter_summary(now=None):
    now = now or timezone.now()
    counts = dead_letter_counts(now - datetime.timedelta(days=1))
    recipients = operators()
    if not recipients:
        logger.warning("dead-letter summary: no staff user with an email and no OPERATOR_EMAILS")
        return {"dead_letters": sum(n for _, n in counts), "recipients": 0}
    total = sum(n for _, n in counts)
    lines = [f"{n:>6}  {channel:<8} {reason}" for (channel, reason), n in counts] or ["No failed deliveries."]
    store_and_dispatch(
        recipients=recipients,
        category=Category.objects.get(key="system"),
        title=f"Dead letters: {total} failed deliveries in the last 24 hours",
        message="count  channel  reason\n" + "\n".join(lines),
        channels=["email"],
        priority="medium",
        data={"dead_letters": [{"channel": c, "reason": r, "count": n} for (c, r), n in counts]},
    )
    logger.info("dead-letter summary: %d dead letters reported to %d operators", total, len(recipients))
    return {"dead_letters": total, "recipients": len(recipients)}
