from django.urls import path

from channels_delivery.channels.sms.callbacks import TwilioStatusCallback, VonageDeliveryReceipt

urlpatterns = [
    path(
        "callbacks/twilio/status/<str:delivery_id>/", TwilioStatusCallback.as_view(), name="twilio-status-callback"
    ),
    path("callbacks/vonage/status/", VonageDeliveryReceipt.as_view(), name="vonage-delivery-receipt"),
]
