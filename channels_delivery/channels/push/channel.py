"""Push to every active contact point of the user, side by side: browsers through Web Push,
phones through FCM HTTP v1 or straight through APNs."""

from dataclasses import dataclass, field

from channels_delivery.channels.push.apns import ApplePush
from channels_delivery.channels.push.fcm import FirebaseMessaging
from channels_delivery.channels.push.providers import WebPush
from channels_delivery.engine.base import ChannelKit, Message
from notifications.models import active_contact_points


@dataclass(frozen=True, kw_only=True)
class PushMessage(Message):
    # Endpoints and public keys are not secret; the encryption needs them. Device tokens are not
    # secret either: the app hands them to us.
    subscriptions: list = field(default_factory=list)
    devices: list = field(default_factory=list)  # {"id", "token", "provider": fcm or apns}
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
    found = {"subscriptions": subscriptions} if subscriptions else {}
    devices = [{"id": device.id, "token": device.token, "provider": device.provider}
               for device in active_contact_points(user.mobile_devices)]
    if devices:
        found["devices"] = devices
    return found or None


def layout(notification):
    return {
        "title": notification.title,
        "body": notification.body,
        "data": notification.payload_data,
        "url": str(notification.payload_data.get("url", "")) if isinstance(notification.payload_data, dict) else "",
        "priority": notification.priority,
    }


CHANNEL = ChannelKit(
    name="push", providers=[WebPush(), FirebaseMessaging(), ApplePush()], message=PushMessage, address=address,
    layout=layout, side_by_side=True, contact_points=("push_subscriptions", "mobile_devices"),
)
