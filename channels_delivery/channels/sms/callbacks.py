"""SMS status callbacks: Twilio's StatusCallback (form-encoded, signed with X-Twilio-Signature)
and Vonage's delivery receipts (form or JSON, signed with the signature secret: `sig` is an HMAC
of the other parameters sorted by name, a recent `timestamp` among them, so an old receipt
cannot be replayed)."""

import json
import time

from django.conf import settings
from twilio.request_validator import RequestValidator
from vonage_http_client.auth import Auth

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


MAX_AGE_SECONDS = 300

VONAGE_STATUS_KINDS = {
    "accepted": events.QUEUED,
    "buffered": events.SENT,
    "delivered": events.DELIVERED,
    "expired": events.UNDELIVERED,
    "failed": events.UNDELIVERED,
    "rejected": events.UNDELIVERED,
}


def params_of(request):
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body)
        except ValueError as error:
            raise BadPayload("body is not JSON") from error
        if not isinstance(body, dict):
            raise BadPayload("body is not a JSON object")
        return {key: str(value) for key, value in body.items()}
    return request.POST.dict()


class VonageDeliveryReceipt(StatusCallbackView):
    provider = "vonage"

    def validate_request(self, request, **kwargs):
        params = params_of(request)
        if not settings.VONAGE_SIGNATURE_SECRET or not params.get("sig"):
            raise BadSignature("missing signature or signature secret")
        if params.get("api-key") != settings.VONAGE_API_KEY:
            raise BadSignature("receipt for another account")
        try:
            age = abs(time.time() - int(params.get("timestamp", "")))
        except ValueError as error:
            raise BadSignature("no timestamp") from error
        if age > MAX_AGE_SECONDS:
            raise BadSignature("timestamp too old")
        auth = Auth(api_key=settings.VONAGE_API_KEY, signature_secret=settings.VONAGE_SIGNATURE_SECRET,
                    signature_method=settings.VONAGE_SIGNATURE_METHOD)
        if not auth.check_signature(dict(params)):
            raise BadSignature("sig does not match")

    def parse_events(self, request, **kwargs):
        params = params_of(request)
        message_id, status = params.get("messageId", ""), params.get("status", "")
        if not message_id or not status:
            raise BadPayload("messageId and status are required")
        error_code = params.get("err-code", "0")
        description = f"Vonage status {status}" + (f", error {error_code}" if error_code not in ("", "0") else "")
        return [
            events.Event(
                provider=self.provider,
                event_id=f"{message_id}:{status}",
                kind=VONAGE_STATUS_KINDS.get(status, events.OTHER),
                delivery_id=params.get("client-ref", ""),
                provider_message_id=message_id,
                description=description,
                payload=params,
            )
        ]
