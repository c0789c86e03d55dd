"""Deciding, per notification, which channels to use, in which order, and what each one sends.

A plan is a list of routes that run side by side; each route is a fallback chain of channels:
the first is queued at once, each later one (position > 0) waits as `pending` until the one
before it fails for good.
"""

from django.conf import settings
from django.db.models import prefetch_related_objects
from django.utils import timezone

from channels_delivery import registry
from notifications.models import Delivery, DeliveryStatus, NotificationStatus
from notifications.planning.preferences import DEFER, SEND, SKIP, PreferenceBook
from notifications.planning.rendering import render_content


def routes_for(notification):
    """Routes as lists of channels: what the sender asked for, else NOTIFY_ROUTES by category
    (a list of routes, or a dict by priority with a "default"), then by priority, then the default."""
    if notification.routes:
        return notification.routes
    config = settings.NOTIFY_ROUTES
    by_category = config.get("categories", {}).get(notification.category_id)
    if isinstance(by_category, dict):
        by_category = by_category.get(notification.priority) or by_category.get("default")
    return by_category or config.get("priorities", {}).get(notification.priority) or config["default"]


def prefetch_contact_points(notifications):
    """The recipients' contact points of every channel these notifications may use, one query per
    kind for the whole batch (the kits name them), so address() makes no query per recipient."""
    names = {name for notification in notifications for route in routes_for(notification) for channel in route
             if channel in registry.BY_NAME for name in registry.kit(channel).contact_points}
    if names:
        prefetch_related_objects([n.recipient for n in notifications], *sorted(names))


def address_for(user, channel):
    """Where the channel reaches the user (the address part of its message), or None."""
    return registry.kit(channel).address(user)


def build_message(notification, channel):
    """The channel's typed message as stored in Delivery.message, or None without a contact point."""
    address = address_for(notification.recipient, channel)
    if address is None:
        return None
    common = {"notification_id": str(notification.id), "category": notification.category_id}
    fields = {**common, **address, **render_content(notification, channel)}
    message_type = registry.kit(channel).message
    if message_type.accepts("attachment_ids"):
        # By id: the files stay in storage, read by the channel at send time.
        fields["attachment_ids"] = [attachment.id for attachment in notification.attachment_rows()]
    return message_type.from_dict(fields).to_dict()


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


def plan_escalation(notification, channel, route, preferences=None, now=None):
    """One more route holding `channel` for an unread notification, decided like any send: the
    user's switches, quiet hours and contact points, each decision in the trace (see /explain/).

    Returns (delivery, None) with an unsaved queued Delivery, (None, until) when quiet hours
    defer it, or (None, None) when it is skipped; the trace says why.
    """
    now = now or timezone.now()
    preferences = preferences or PreferenceBook.load([notification.recipient_id])
    decision = preferences.decide(notification.recipient_id, notification.category_id, channel, now)
    if decision.action == DEFER:
        record(notification, now, event="escalation deferred", channel=channel, until=decision.until.isoformat(),
               reason=decision.reason)
        return None, decision.until
    message = build_message(notification, channel) if decision.action == SEND else None
    reason = decision.reason if decision.action == SKIP else "no contact point" if message is None else decision.reason
    record(notification, now, event="planned", channel=channel, route=route, position=0,
           decision="use" if message is not None else "skip", reason=f"escalation: {reason}")
    if message is None:
        return None, None
    delivery = Delivery(
        notification=notification, channel=channel, route=route, position=0, status=DeliveryStatus.QUEUED,
        message=message, reason="escalation: in-app unread",
        template_version=message.get("template", {}).get("version"),
    )
    return delivery, None
