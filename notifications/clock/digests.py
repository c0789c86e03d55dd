"""Digests: a category's notifications inside one window reach a user as one message per channel.

A category has a rolling window (digest_window_minutes, windows aligned to the epoch) or a daily
send time (digest_daily_at, in the recipient's time zone). Dispatch holds such notifications as
`batched` in the window's Digest row; beat's send_due_digests sends each ended window once. The
unique (user, category, window_start) constraint and row locks keep that to one digest however
many workers batch and send at the same time. Urgent notifications are never held back.
"""

import datetime
import logging
import zoneinfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications.models import Digest, Notification, NotificationStatus, Priority
from notifications.models import categories as all_categories
from notifications.planning.dispatch import dispatch_on_commit

logger = logging.getLogger(__name__)


def digest_categories():
    """The categories that gather into digests, from the process cache."""
    return {key: category for key, category in all_categories().items()
            if category.digest_window_minutes is not None or category.digest_daily_at is not None}


def user_timezone(user):
    name = getattr(getattr(user, "profile", None), "timezone", None) or "UTC"
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return datetime.UTC


def window_for(category, user, moment):
    """(start, end) of the digest window that holds `moment`, or None for a category without one."""
    if category.digest_daily_at is not None:
        local = moment.astimezone(user_timezone(user))
        end = datetime.datetime.combine(local.date(), category.digest_daily_at, tzinfo=local.tzinfo)
        if end <= local:
            end = datetime.datetime.combine(
                local.date() + datetime.timedelta(days=1), category.digest_daily_at, tzinfo=local.tzinfo
            )
        start = datetime.datetime.combine(
            end.date() - datetime.timedelta(days=1), category.digest_daily_at, tzinfo=local.tzinfo
        )
        return start.astimezone(datetime.UTC), end.astimezone(datetime.UTC)
    if category.digest_window_minutes:
        length = category.digest_window_minutes * settings.NOTIFY_CLOCK_MINUTE_SECONDS
        epoch = moment.timestamp()
        start = epoch - epoch % length
        return (
            datetime.datetime.fromtimestamp(start, datetime.UTC),
            datetime.datetime.fromtimestamp(start + length, datetime.UTC),
        )
    return None


def hold_for_digest(notifications):
    """Batch the notifications of digest categories into their windows (inside the caller's
    transaction); returns the ones to dispatch now. A notification whose window was already sent
    (it arrived late) goes out on its own rather than wait for a digest that has left."""
    categories = digest_categories()
    if not categories:
        return notifications
    windows, rest = {}, []
    for notification in notifications:
        category = categories.get(notification.category_id)
        if category is None or notification.priority == Priority.URGENT or "digest" in notification.payload_data:
            rest.append(notification)
            continue
        start, end = window_for(category, notification.recipient, notification.created_at)
        windows.setdefault((notification.recipient_id, category.key, start, end), []).append(notification)
    if not windows:
        return rest
    Digest.objects.bulk_create(
        [Digest(user_id=user, category_id=cat, window_start=start, window_end=end)
         for user, cat, start, end in windows],
        ignore_conflicts=True,  # INSERT ... ON CONFLICT DO NOTHING: racing workers share one row
    )
    for (user, cat, start, _end), members in sorted(windows.items(), key=lambda item: item[0][:3]):
        # Locked so a digest being sent right now cannot miss a notification we add.
        digest = Digest.objects.select_for_update().get(user_id=user, category_id=cat, window_start=start)
        if digest.status != Digest.Status.COLLECTING:
            rest.extend(members)
            continue
        Notification.objects.filter(id__in=[n.id for n in members]).update(
            status=NotificationStatus.BATCHED, digest=digest
        )
    return rest


def digest_content(digest, items):
    category = digest.category
    count = len(items)
    title = f"{count} new {category.name} notification{'s' if count != 1 else ''}"
    body = "\n".join(f"- {item.title}" for item in items)
    context = {
        "count": count,
        "category": category.name,
        "items": [{"title": item.title, "body": item.body, "created_at": item.created_at.isoformat()}
                  for item in items],
    }
    return title, body, context


def send_due(now=None, limit=200):
    """Send every digest whose window has ended: one Notification carrying the digest, planned
    through the normal dispatch path. Returns how many were sent."""
    now = now or timezone.now()
    sent = 0
    for _ in range(limit):
        with transaction.atomic():
            digest = (
                Digest.objects.select_for_update(skip_locked=True)
                .select_related("category", "user")
                .filter(status=Digest.Status.COLLECTING, window_end__lte=now)
                .order_by("window_end")
                .first()
            )
            if digest is None:
                break
            items = list(digest.items.filter(status=NotificationStatus.BATCHED).order_by("created_at"))
            digest.status, digest.sent_at = Digest.Status.SENT, now
            if items:
                digest.notification = make_digest_notification(digest, items)
                dispatch_on_commit([digest.notification.id], digest.notification.priority)
                Notification.objects.filter(id__in=[item.id for item in items]).update(
                    status=NotificationStatus.DISPATCHED
                )
            digest.save(update_fields=["status", "sent_at", "notification"])
        sent += bool(items)
        logger.log(logging.INFO if items else logging.DEBUG, "digest %s: %d notifications sent as one", digest.pk,
                   len(items))
    return sent


def make_digest_notification(digest, items):
    title, body, context = digest_content(digest, items)
    routes = [list(route) for route in dict.fromkeys(tuple(route) for item in items for route in item.routes)]
    return Notification.objects.create(
        recipient=digest.user,
        category=digest.category,
        title=title,
        body=body,
        routes=routes,
        priority=max((item.priority for item in items), key=list(Priority.values).index),
        data={"digest": {"id": digest.pk, "count": len(items), "notification_ids": [str(i.id) for i in items]}},
        # `<category>_digest` when an operator wrote one, else the default layout with the title
        # and the list above (never the category's own template, which expects other variables).
        template_key=f"{digest.category_id}_digest",
        context=context,
        status=NotificationStatus.PENDING,
    )
