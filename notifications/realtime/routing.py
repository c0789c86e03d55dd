from django.urls import path

from notifications.realtime.consumer import InboxConsumer

websocket_urlpatterns = [
    path("ws/notifications/", InboxConsumer.as_asgi()),
]
