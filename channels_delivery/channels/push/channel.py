"""Web Push to every active subscription of the user."""

from dataclasses import dataclass, field

from channels_delivery.channels.push.providers import WebPush
from channels_delivery.engine.base import ChannelKit, Message
from notifications.models import active_contact_points


@dataclass(frozen=True, kw_only=True)
class PushMessage(Message):
    # Endpoints and public keys are not secret; the encryption needs them.
    subscriptions: list
    title: str
    body: str = ""
    data: dict = field(default_factory=dict)
    url: str = ""
    priority: str = "medium"


def address(user):
    subscriptions = [
        {"id": sub.id, "endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
        for sub in active_contact_points(user.push_subscriptions)
    ]
    return {"subscriptions": subscriptions} if subscriptions else None


def layout(notification):
    return {
        "title": notification.title,
        "body": notification.body,
        "data": notification.payload_data,
        "url": str(notification.payload_data.get("url", "")) if isinstance(notification.payload_data, dict) else "",
        "priority": notification.priority,
    }


CHANNEL = ChannelKit(name="push", providers=[WebPush()], message=PushMessage, address=address, layout=layout)
