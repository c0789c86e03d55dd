"""Webhooks to our users' endpoints, signed per Standard Webhooks (`standardwebhooks`).

The message names endpoint ids only: the URL and signing secret are read from the
WebhookEndpoint row at send time, so secrets are never copied into Delivery rows and a rotated
secret or a deactivated endpoint takes effect on the next try.
"""

import binascii
import json
from datetime import datetime, timezone
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from notifications.models import WebhookEndpoint

from . import hooks
from .base import Provider, SendResult
from .errors import PermanentDeliveryError, TransientDeliveryError, error_for_status
from .fanout import settle
from .netguard import BlockedAddressError, guarded_session


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


def read_limited(response, limit=64 * 1024):
    """The start of the answer; a receiver cannot make us hold an endless body in memory."""
    body = bytearray()
    for chunk in response.iter_content(8192):
        body += chunk
        if len(body) > limit:
            response.close()  # drops the connection instead of draining the rest
            break
    return bytes(body[:limit]).decode(errors="replace")


def encode(event, content_type="json"):
    """The body as sent and signed: canonical JSON, or a form whose nested values are JSON."""
    if content_type == "form":
        return urlencode({key: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                                                  sort_keys=True, default=str)
                          for key, value in sorted(event.items())})
    return json.dumps(event, separators=(",", ":"), sort_keys=True, default=str)


class SignedWebhook(Provider):
    name = "webhook"
    channel = "webhook"

    def send(self, delivery_id, message):
        endpoints = WebhookEndpoint.objects.filter(id__in=message.get("endpoint_ids", []), active=True)
        outcomes = []
        for endpoint in endpoints:
            error, detail = self.send_one(delivery_id, endpoint, encode(message["event"], endpoint.content_type))
            outcomes.append((endpoint.id, error, detail))
        payload = settle(self.name, outcomes, require_all=True)
        return SendResult(provider_message_id=str(delivery_id), status_code="2xx", payload=payload)

    def send_one(self, delivery_id, endpoint, body):
        host = urlsplit(endpoint.url).hostname or "?"
        # Errors name the endpoint and host, never the URL: its path or query may hold a token.
        where = f"endpoint {endpoint.id} ({host})"
        try:
            signed = signed_headers(delivery_id, endpoint.secret, body, content_type=CONTENT_TYPES[endpoint.content_type])
        except (binascii.Error, ValueError):
            return PermanentDeliveryError(f"webhook {where}: signing secret is not base64, rotate it"), {}
        # The endpoint's own headers (an API key, a bearer token) never override ours, and their
        # values never appear in an error text.
        headers = {**{name: value for name, value in (endpoint.extra_headers or {}).items()
                      if name.lower() not in RESERVED_HEADERS}, **signed}
        try:
            response = guarded_session().request(
                endpoint.method, endpoint.url, data=body.encode(), headers=headers,
                timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT), allow_redirects=False,
                stream=True,
            )
            text = read_limited(response)
        except BlockedAddressError as error:
            return PermanentDeliveryError(f"webhook {where} refused: {error}"), {}
        except requests.Timeout as error:
            return TransientDeliveryError(f"webhook {where} timed out ({type(error).__name__})"), {}
        except requests.ConnectionError as error:
            return TransientDeliveryError(f"webhook {where} unreachable ({type(error).__name__})"), {}
        except requests.RequestException as error:
            return PermanentDeliveryError(f"webhook {where}: {type(error).__name__}"), {}
        if 200 <= response.status_code < 300:
            return None, {"status": response.status_code}
        # A receiver that echoes our request must not put its credentials into our error texts.
        for value in (endpoint.extra_headers or {}).values():
            text = text.replace(value, "[redacted]") if value else text
        return self.error_for(endpoint, where, response, text), {"status": response.status_code}

    @staticmethod
    def error_for(endpoint, where, response, text):
        """The one place webhook answers are sorted, as Standard Webhooks suggests: redirects are
        not followed, so they fail; 410 Gone means the receiver wants no more, so the endpoint is
        switched off; 408, 429 and 5xx are retried, honouring Retry-After."""
        if response.status_code == 410:
            hooks.contact_point_gone("webhook", endpoint.id, "endpoint answered 410 Gone")
            return PermanentDeliveryError(f"webhook {where} 410: endpoint gone, switched off", status_code=410)
        if 300 <= response.status_code < 400:
            return PermanentDeliveryError(f"webhook {where} {response.status_code}: redirects are not followed",
                                          status_code=response.status_code)
        return error_for_status(f"webhook {where}", response.status_code, text[:200], response.headers)
