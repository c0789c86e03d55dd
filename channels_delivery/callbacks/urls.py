from django.urls import path

from .sendgrid import SendGridEventWebhook
from .twilio import TwilioStatusCallback
from .vonage import VonageDeliveryReceipt

urlpatterns = [
    path("twilio/status/<str:delivery_id>/", TwilioStatusCallback.as_view(), name="twilio-status-callback"),
    path("vonage/status/", VonageDeliveryReceipt.as_view(), name="vonage-delivery-receipt"),
    path("sendgrid/events/", SendGridEventWebhook.as_view(), name="sendgrid-event-webhook"),
]
