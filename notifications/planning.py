"""Deciding, per notification, which channels to use and what each one sends."""

from django.conf import settings
from django.utils.html import escape, linebreaks

from .models import Channel, Delivery, DeliveryStatus


def contact_email(user):
    return user.email or None


def render_message(notification, channel):
    """The message a channel sends, with its address; None when the user has no contact point."""
    recipient = notification.recipient
    common = {"notification_id": str(notification.id), "category": notification.category_id}
    if channel == Channel.EMAIL:
        address = contact_email(recipient)
        if address is None:
            return None
        return {
            **common,
            "to": address,
            "subject": notification.title,
            "text": notification.body,
            "html": linebreaks(escape(notification.body)) if notification.body else "",
        }
    if channel == Channel.INAPP:
        return {**common, "user_id": recipient.pk, "title": notification.title, "body": notification.body}
    return None


def plan(notification):
    """Unsaved Delivery rows for a notification, in order; channels without a contact point are skipped."""
    channels = notification.channels or settings.NOTIFY_DEFAULT_CHANNELS
    deliveries = []
    for position, channel in enumerate(channels):
        message = render_message(notification, channel)
        if message is None:
            deliveries.append(
                Delivery(
                    notification=notification,
                    channel=channel,
                    position=position,
                    status=DeliveryStatus.SKIPPED,
                    reason="no contact point" if channel in (Channel.EMAIL, Channel.INAPP) else "channel not available",
                )
            )
            continue
        deliveries.append(
            Delivery(
                notification=notification,
                channel=channel,
                position=position,
                status=DeliveryStatus.QUEUED,
                message=message,
            )
        )
    return deliveries
