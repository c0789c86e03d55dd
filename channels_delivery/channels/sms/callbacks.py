"""Twilio Messaging StatusCallback: form-encoded, signed with X-Twilio-Signature."""

from django.conf import settings
from twilio.request_validator import RequestValidator

from channels_delivery.engine import events
from channels_delivery.engine.callbacks import BadPayload, BadSignature, StatusCallbackView

STATUS_KINDS = {
    "accepted": events.QUEUED,
    "queued": events.QUEUED,
    "sending": events.SENT,
    "sent": events.SENT,
    "delivered": events.DELIVERED,
    "undelivered": events.UNDELIVERED,
    "failed": events.UNDELIVERED,
}


class TwilioStatusCallback(StatusCallbackView):
    provider = "twilio"

    def validate_request(self, request, **kwargs):
        signature = request.headers.get("X-Twilio-Signature", "")
        if not settings.TWILIO_AUTH_TOKEN or not signature:
            raise BadSignature("missing signature or auth token")
        # Twilio signs the URL it called, which is ours as the public sees it.
        url = settings.PUBLIC_BASE_URL + request.get_full_path()
        if not RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, request.POST.dict(), signature):
            raise BadSignature("X-Twilio-Signature does not match")

    def parse_events(self, request, delivery_id=None, **kwargs):
        params = request.POST.dict()
        sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
        if not sid or not status:
            raise BadPayload("MessageSid and MessageStatus are required")
        error_code = params.get("ErrorCode", "")
        description = f"Twilio status {status}" + (f", error {error_code}" if error_code else "")
        return [
            events.Event(
                provider=self.provider,
                event_id=f"{sid}:{status}",
                kind=STATUS_KINDS.get(status, events.OTHER),
                delivery_id=str(delivery_id),
                provider_message_id=sid,
                description=description,
                payload=params,
            )
        ]
