"""Webhooks to the user's endpoints, as Standard Webhooks events.

The message names endpoint ids only: URLs and signing secrets are credentials, read from their
rows at send time and never copied into a Delivery."""

from dataclasses import dataclass

from channels_delivery.channels.webhook.providers import SignedWebhook
from channels_delivery.engine.base import ChannelKit, Message
from notifications.models import active_contact_points


@dataclass(frozen=True, kw_only=True)
class WebhookMessage(Message):
    endpoint_ids: list
    event: dict


def address(user):
    ids = [endpoint.id for endpoint in active_contact_points(user.webhook_endpoints)]
    return {"endpoint_ids": ids} if ids else None


def layout(notification):
    """A Standard Webhooks event: type, timestamp and data."""
    return {
        "event": {
            "type": "notification.created",
            "timestamp": notification.created_at.isoformat(),
            "data": {
                "id": str(notification.id),
                "recipient": notification.recipient.get_username(),
                "category": notification.category_id,
                "title": notification.title,
                "body": notification.body,
                "priority": notification.priority,
                "data": notification.payload_data,
            },
        }
    }


CHANNEL = ChannelKit(
    name="webhook", providers=[SignedWebhook()], message=WebhookMessage, address=address, layout=layout,
    contact_points=("webhook_endpoints",),
)
