"""Deciding, per notification, which channels to use, in which order, and what each one sends.

A plan is a list of routes that run side by side; each route is a fallback chain of channels:
the first is queued at once, each later one (position > 0) waits as `pending` until the one
before it fails for good.
"""

from django.conf import settings

from .contact_points import address_for
from .models import Delivery, DeliveryStatus
from .rendering import render_content


def routes_for(notification):
    """Routes as lists of channels: the API's override, else the configured default."""
    if notification.channels:
        return [[channel] for channel in notification.channels]
    return [[channel] for channel in settings.NOTIFY_DEFAULT_CHANNELS]


def build_message(notification, channel):
    address = address_for(notification.recipient, channel)
    if address is None:
        return None
    common = {"notification_id": str(notification.id), "category": notification.category_id}
    return {**common, **address, **render_content(notification, channel)}


def plan(notification):
    """Unsaved Delivery rows for a notification; a channel without a contact point is skipped."""
    deliveries = []
    for route, channels in enumerate(routes_for(notification)):
        head_queued = False
        for position, channel in enumerate(channels):
            message = build_message(notification, channel)
            delivery = Delivery(
                notification=notification, channel=channel, route=route, position=position, message=message or {}
            )
            if message is None:
                delivery.status, delivery.reason = DeliveryStatus.SKIPPED, "no contact point"
            elif not head_queued:
                delivery.status, head_queued = DeliveryStatus.QUEUED, True
            else:
                delivery.status = DeliveryStatus.PENDING
            deliveries.append(delivery)
    return deliveries
