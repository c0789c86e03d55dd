"""SendGrid Event Webhook: a JSON array of events, signed with ECDSA (the SDK's EventWebhook)."""

import hashlib
import json

from django.conf import settings
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

from channels_delivery.engine import events
from channels_delivery.engine.callbacks import BadPayload, BadSignature, StatusCallbackView

EVENT_KINDS = {
    "processed": events.QUEUED,
    "deferred": events.DEFERRED,
    "delivered": events.DELIVERED,
    "bounce": events.BOUNCED,
    "blocked": events.BOUNCED,
    "dropped": events.UNDELIVERED,
}


class SendGridEventWebhook(StatusCallbackView):
    provider = "sendgrid"

    def validate_request(self, request, **kwargs):
        signature = request.headers.get(EventWebhookHeader.SIGNATURE, "")
        timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP, "")
        if not settings.SENDGRID_WEBHOOK_PUBLIC_KEY or not signature or not timestamp:
            raise BadSignature("missing signature, timestamp or verification key")
        try:
            verified = EventWebhook(settings.SENDGRID_WEBHOOK_PUBLIC_KEY).verify_signature(
                request.body.decode("utf-8", errors="replace"), signature, timestamp
            )
        except (ValueError, TypeError) as error:  # malformed base64 or key
            raise BadSignature(str(error)) from error
        if not verified:
            raise BadSignature("event webhook signature does not match")

    def parse_events(self, request, **kwargs):
        try:
            payload = json.loads(request.body)
        except ValueError as error:
            raise BadPayload("body is not JSON") from error
        if not isinstance(payload, list) or not all(isinstance(item, dict) for item in payload):
            raise BadPayload("expected a JSON array of events")
        return [self.event(item) for item in payload]

    def event(self, item):
        kind = item.get("event", "")
        event_id = item.get("sg_event_id") or hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()
        detail = item.get("reason") or item.get("response") or item.get("status") or ""
        return events.Event(
            provider=self.provider,
            event_id=str(event_id),
            kind=EVENT_KINDS.get(kind, events.OTHER),
            delivery_id=str(item.get("delivery_id", "")),
            # sg_message_id is the X-Message-Id we stored, plus a suffix per recipient.
            provider_message_id=str(item.get("sg_message_id", "")).split(".")[0],
            description=f"SendGrid {kind}" + (f": {detail}" if detail else ""),
            payload=item,
        )
