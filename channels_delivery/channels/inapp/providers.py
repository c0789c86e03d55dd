"""In-app: the notification is already stored; delivering it puts it in the user's inbox."""

from channels_delivery.engine.base import Provider, SendResult


# Called with [(delivery_id, message)] once the deliveries are recorded `delivered` (a chunk's at
# once); the realtime app (notifications/realtime) registers its publisher here, so the engine
# never imports it.
inbox_listeners = []


class InApp(Provider):
    name = "inbox"
    channel = "inapp"
    # Nothing to wait on: the inbox is Postgres, and the listeners publish to the channel layer,
    # whose clients belong to the calling thread's event loop.
    concurrent = False

    def send(self, delivery_id, message):
        return SendResult(provider_message_id=str(delivery_id), status_code="stored", confirmed=True)

    def after_sent(self, sent):
        for listener in inbox_listeners:
            listener(sent)
