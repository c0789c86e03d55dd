"""Storing what an app asked to send, and handing it to the dispatch task after commit."""

from django.db import transaction

from .models import Notification, NotificationStatus


@transaction.atomic
def store_and_dispatch(
    *, recipients, category, title, message="", channels=None, priority, data, sender=None,
    template_key="", context=None, locale="",
):
    # Each item of `channels` is a channel (a route of its own) or a list of channels (a fallback chain).
    routes = [[item] if isinstance(item, str) else list(item) for item in channels or []]
    notifications = Notification.objects.bulk_create(
        Notification(
            recipient=user,
            sender=sender,
            category=category,
            title=title,
            body=message,
            channels=[channel for route in routes for channel in route],
            routes=routes,
            priority=priority,
            data=data,
            status=NotificationStatus.PENDING,
            template_key=template_key,
            context=context or {},
            locale=locale,
        )
        for user in recipients
    )
    ids = [str(n.id) for n in notifications]
    from .tasks import dispatch_notifications

    transaction.on_commit(lambda: dispatch_notifications.delay(ids))
    return notifications
