"""In-app: the notification is already stored; delivering it puts it in the user's inbox."""

from dataclasses import dataclass, field

from channels_delivery.channels.inapp.providers import InApp
from channels_delivery.engine.base import ChannelKit, Message


@dataclass(frozen=True, kw_only=True)
class InAppMessage(Message):
    user_id: int
    title: str
    body: str = ""
    data: dict = field(default_factory=dict)


def address(user):
    return {"user_id": user.pk}


def layout(notification):
    return {"title": notification.title, "body": notification.body, "data": notification.payload_data}


CHANNEL = ChannelKit(name="inapp", providers=[InApp()], message=InAppMessage, address=address, layout=layout)
