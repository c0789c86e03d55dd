"""Storing what an app asked to send, and handing it to the dispatch task after commit."""

from django.db import transaction
from django.utils import timezone

from .models import Notification, NotificationStatus


@transaction.atomic
def store_and_dispatch(
    *, recipients, category, title, message="", channels=None, priority, data, sender=None,
    scheduled_at=None, expires_at=None,
):
    # A send for later waits in Postgres; beat's dispatch_due_notifications picks it up on time.
    later = scheduled_at is not None and scheduled_at > timezone.now()
    notifications = Notification.objects.bulk_create(
        Notification(
            recipient=user,
            sender=sender,
            category=category,
            title=title,
            body=message,
            channels=channels or [],
            priority=priority,
            data=data,
            scheduled_at=scheduled_at,
            expires_at=expires_at,
            status=NotificationStatus.SCHEDULED if later else NotificationStatus.PENDING,
        )
        for user in recipients
    )
    if later:
        return notifications
    ids = [str(n.id) for n in notifications]
    from .tasks import dispatch_notifications

    transaction.on_commit(lambda: dispatch_notifications.delay(ids))
    return notifications
