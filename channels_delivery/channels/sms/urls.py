from django.urls import path

from channels_delivery.channels.sms.callbacks import TwilioStatusCallback

urlpatterns = [
    path(
        "callbacks/twilio/status/<str:delivery_id>/", TwilioStatusCallback.as_view(), name="twilio-status-callback"
    ),
]
