"""Standard Webhooks on the way out: the signed headers, the body as signed, and how much of an
answer we read. Used by the webhook channel and by status events to API clients."""

import json
from datetime import datetime, timezone
from urllib.parse import urlencode

from standardwebhooks.webhooks import Webhook

CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}
# Headers an endpoint's extra headers may not set: ours carry the signature, the body's framing
# and its de-duplication key.
RESERVED_HEADERS = {
    "content-type", "content-length", "host", "transfer-encoding", "connection", "user-agent",
    "webhook-id", "webhook-timestamp", "webhook-signature", "idempotency-key",
}


def signed_headers(delivery_id, secret, body, now=None, content_type="application/json"):
    timestamp = now or datetime.now(timezone.utc)
    return {
        "Content-Type": content_type,
        "User-Agent": "notify-webhooks/1",
        "webhook-id": str(delivery_id),
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(str(delivery_id), timestamp, body),
        # Receivers that do not speak Standard Webhooks still get a de-duplication key.
        "Idempotency-Key": str(delivery_id),
    }


def encode(event, content_type="json"):
    """The body as sent and signed: canonical JSON, or a form whose nested values are JSON."""
    if content_type == "form":
        return urlencode({key: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                                                  sort_keys=True, default=str)
                          for key, value in sorted(event.items())})
    return json.dumps(event, separators=(",", ":"), sort_keys=True, default=str)
