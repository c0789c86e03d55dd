"""In-app: the notification is already stored; delivering it puts it in the user's inbox."""

from .base import Provider, SendResult

# Called with (user_id, message) after an in-app delivery; the realtime module registers here.
inbox_listeners = []


class InApp(Provider):
    name = "inbox"
    channel = "inapp"

    def send(self, delivery_id, message):
        for listener in inbox_listeners:
            listener(message["user_id"], message)
        return SendResult(provider_message_id=str(delivery_id), status_code="stored")
