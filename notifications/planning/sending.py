"""Storing what an app asked to send, and handing it to the dispatch task after commit."""

import contextlib
import logging

from django.db import transaction
from django.utils import timezone

from notifications.models import Notification, NotificationStatus
from notifications.planning.attachments import store as store_attachments
from notifications.planning.dispatch import dispatch_on_commit

logger = logging.getLogger(__name__)


def is_held(scheduled_at, now=None):
    """A notification scheduled for later waits in Postgres; the beat task dispatches it when due."""
    return scheduled_at is not None and scheduled_at > (now or timezone.now())


def log_accepted(notifications, category, priority, sender, held_until):
    """One line per accepted send (not per recipient); ids, never titles or bodies."""
    if not notifications:
        return
    what = (f"notification {notifications[0].id}" if len(notifications) == 1
            else f"{len(notifications)} notifications ({notifications[0].id} first)")
    logger.info(
        "accepted %s: category %s, priority %s, from %s%s", what, getattr(category, "key", category), priority,
        sender.name if sender else "staff or internal", f", held until {held_until.isoformat()}" if held_until else "",
    )


def store_and_dispatch(
    *, recipients, category, title, message="", channels=None, priority, data, sender=None,
    template_key="", context=None, locale="", scheduled_at=None, expires_at=None, attachments=(),
):
    """Store one notification per recipient, and hand them to dispatch once they are committed.
    One notification without attachments is one INSERT, atomic on its own, so it is stored in
    autocommit: a transaction around it only added BEGIN and COMMIT, half of such a send's SQL
    statements (bench.roundtrips)."""
    one_statement = len(recipients) == 1 and not attachments
    with contextlib.nullcontext() if one_statement else transaction.atomic():
        held = is_held(scheduled_at)
        # Each item of `channels` is a channel (a route of its own) or a list of channels (a fallback chain).
        routes = [[item] if isinstance(item, str) else list(item) for item in channels or []]
        notifications = [
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
        ]
        if one_statement:
            notifications[0].save(force_insert=True)  # bulk_create() would open a transaction of its own
        else:
            Notification.objects.bulk_create(notifications)
        store_attachments(notifications, attachments)  # before dispatch can run: it goes on commit
        log_accepted(notifications, category, priority, sender, scheduled_at if held else None)
        if held:
            return notifications
        ids = [n.id for n in notifications]
        dispatch_on_commit(
            ids, priority, coalesce=True,
            withdraw=lambda: Notification.objects.filter(id__in=ids, status=NotificationStatus.PENDING).delete(),
        )
        return notifications
