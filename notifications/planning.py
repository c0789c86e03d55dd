"""Deciding, per notification, which channels to use, in which order, and what each one sends.

A plan is a list of routes that run side by side; each route is a fallback chain of channels:
the first is queued at once, each later one (position > 0) waits as `pending` until the one
before it fails for good.
"""

from django.conf import settings
from django.utils import timezone

from .contact_points import address_for
from .models import Channel, Delivery, DeliveryStatus, NotificationStatus
from .preferences import DEFER, SEND, SKIP, PreferenceBook
from .rendering import render_content


def routes_for(notification):
    """Routes as lists of channels: what the sender asked for, else NOTIFY_ROUTES by category
    (a list of routes, or a dict by priority with a "default"), then by priority, then the default."""
    if notification.routes:
        return notification.routes
    if notification.channels:
        return [[channel] for channel in notification.channels]
    config = settings.NOTIFY_ROUTES
    by_category = config.get("categories", {}).get(notification.category_id)
    if isinstance(by_category, dict):
        by_category = by_category.get(notification.priority) or by_category.get("default")
    return by_category or config.get("priorities", {}).get(notification.priority) or config["default"]


def build_message(notification, channel):
    address = address_for(notification.recipient, channel)
    if address is None:
        return None
    common = {"notification_id": str(notification.id), "category": notification.category_id}
    message = {**common, **address, **render_content(notification, channel)}
    if channel == Channel.EMAIL:
        # By id: the files stay in storage, read by the email channel at send time.
        attachment_ids = [attachment.id for attachment in notification.attachments.all()]
        if attachment_ids:
            message["attachment_ids"] = attachment_ids
    return message


def plan(notification, preferences=None, now=None):
    """Unsaved Delivery rows for a notification, each channel decided by the recipient's preferences.

    Inside the recipient's quiet hours nothing is planned: the notification becomes `scheduled`
    until the window ends. Every decision lands in notification.trace (saved by the caller).
    """
    now = now or timezone.now()
    preferences = preferences or PreferenceBook.load([notification.recipient_id])
    routes = routes_for(notification)
    decisions = preferences.decide_notification(notification, [c for route in routes for c in route], now)
    if deferral := next((d for d in decisions.values() if d.action == DEFER), None):
        defer(notification, deferral, now)
        return []
    deliveries = []
    planned = set()
    for route, channels in enumerate(routes):
        head_queued = False
        # A channel is planned once per notification, in the first place it appears.
        channels = [channel for channel in channels if channel not in planned]
        planned.update(channels)
        for position, channel in enumerate(channels):
            decision = decisions[channel]
            message = build_message(notification, channel) if decision.action == SEND else None
            delivery = Delivery(
                notification=notification, channel=channel, route=route, position=position, message=message or {},
                template_version=(message or {}).get("template", {}).get("version"),
            )
            if decision.action == SKIP:
                delivery.status, delivery.reason = DeliveryStatus.SKIPPED, decision.reason
            elif message is None:
                delivery.status, delivery.reason = DeliveryStatus.SKIPPED, "no contact point"
            elif not head_queued:
                delivery.status, head_queued = DeliveryStatus.QUEUED, True
            else:
                delivery.status = DeliveryStatus.PENDING
            used = delivery.status != DeliveryStatus.SKIPPED
            record(notification, now, event="planned", channel=channel, route=route, position=position,
                   decision="use" if used else "skip", reason=decision.reason if used else delivery.reason,
                   template_version=delivery.template_version)
            deliveries.append(delivery)
    return deliveries


def defer(notification, decision, now):
    notification.status, notification.scheduled_at = NotificationStatus.SCHEDULED, decision.until
    record(notification, now, event="deferred", until=decision.until.isoformat(), reason=decision.reason)


def record(notification, now, **event):
    notification.trace = [*(notification.trace or []), {"at": now.isoformat(), **event}]
