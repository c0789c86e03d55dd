from django.urls import path

from .sendgrid import SendGridEventWebhook
from .twilio import TwilioStatusCallback

urlpatterns = [
    path("twilio/status/<str:delivery_id>/", TwilioStatusCallback.as_view(), name="twilio-status-callback"),
    path("sendgrid/events/", SendGridEventWebhook.as_view(), name="sendgrid-event-webhook"),
]
