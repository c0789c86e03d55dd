"""Storing what an app asked to send, and handing it to the dispatch task after commit."""

from django.db import transaction
from django.utils import timezone

from notifications.models import Notification, NotificationStatus
from notifications.planning.attachments import store as store_attachments
from notifications.planning.dispatch import dispatch_on_commit


def is_held(scheduled_at, now=None):
    """A notification scheduled for later waits in Postgres; the beat task dispatches it when due."""
    return scheduled_at is not None and scheduled_at > (now or timezone.now())


@transaction.atomic
def store_and_dispatch(
    *, recipients, category, title, message="", channels=None, priority, data, sender=None,
    template_key="", context=None, locale="", scheduled_at=None, expires_at=None, attachments=(),
):
    held = is_held(scheduled_at)
    # Each item of `channels` is a channel (a route of its own) or a list of channels (a fallback chain).
    routes = [[item] if isinstance(item, str) else list(item) for item in channels or []]
    notifications = Notification.objects.bulk_create(
        Notification(
            recipient=user,
            sender=sender,
            category=category,
            title=title,
            body=message,
            routes=routes,
            priority=priority,
            data=data,
            template_key=template_key,
            context=context or {},
            locale=locale,
            scheduled_at=scheduled_at,
            expires_at=expires_at,
            status=NotificationStatus.SCHEDULED if held else NotificationStatus.PENDING,
        )
        for user in recipients
    )
    store_attachments(notifications, attachments)  # before dispatch can run: it goes on commit
    if held:
        return notifications
    dispatch_on_commit([n.id for n in notifications], priority)
    return notifications
