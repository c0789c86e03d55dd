from django.urls import path

from channels_delivery.channels.email.callbacks import SendGridEventWebhook

urlpatterns = [
    path("callbacks/sendgrid/events/", SendGridEventWebhook.as_view(), name="sendgrid-event-webhook"),
]
