"""Webhooks to our users' endpoints, signed per Standard Webhooks (`standardwebhooks`).

The message names endpoint ids only: the URL and signing secret are read from the
WebhookEndpoint row at send time, so secrets are never copied into Delivery rows and a rotated
secret or a deactivated endpoint takes effect on the next try.
"""

import binascii
from urllib.parse import urlsplit

import requests
from django.conf import settings

from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.circuit import through_destination_breaker
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError, error_for_status
from channels_delivery.engine.fanout import settle
from channels_delivery.engine.netguard import BlockedAddressError, bounded_post
from channels_delivery.engine.standard_webhooks import CONTENT_TYPES, RESERVED_HEADERS, encode, signed_headers
from notifications.models import Delivery, WebhookEndpoint


ACCEPTED = "accepted_endpoint_ids"


def accepted_endpoints(delivery_id):
    payload = Delivery.objects.filter(id=delivery_id).values_list("provider_payload", flat=True).first() or {}
    return set(payload.get(ACCEPTED, []))


def remember_accepted(delivery_id, accepted):
    """Kept on the row across retries (the attempt's own outcome is written by the engine)."""
    if accepted:
        Delivery.objects.filter(id=delivery_id).update(provider_payload={ACCEPTED: sorted(accepted)})


class SignedWebhook(Provider):
    name = "webhook"
    channel = "webhook"
    shared_breaker = False

    def send(self, delivery_id, message):
        """A retry posts only to the endpoints that have not accepted this delivery yet: one
        failing endpoint must not make us re-POST to every other one on each retry."""
        accepted = accepted_endpoints(delivery_id)
        endpoints = WebhookEndpoint.objects.filter(
            id__in=[i for i in message.endpoint_ids if i not in accepted], active=True
        )
        outcomes = []
        for endpoint in endpoints:
            body = encode(message.event, endpoint.content_type)
            error, detail = through_destination_breaker(
                self.name, endpoint.url,
                lambda endpoint=endpoint, body=body: self.send_one(delivery_id, endpoint, body),
            )
            outcomes.append((endpoint.id, error, detail))
            if error is None:
                accepted.add(endpoint.id)
        remember_accepted(delivery_id, accepted)
        if outcomes or not accepted:
            payload = settle(self.name, outcomes, require_all=True)
        else:
            payload = {"targets": []}  # every endpoint accepted it on an earlier try
        payload[ACCEPTED] = sorted(accepted)
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
            response, answer = bounded_post(
                endpoint.url, data=body.encode(), headers=headers, method=endpoint.method,
                timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT),
                deadline=settings.OUTBOUND_DEADLINE_SECONDS, limit=settings.OUTBOUND_RESPONSE_MAX_BYTES,
            )
            text = answer.decode(errors="replace")
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
            WebhookEndpoint.objects.filter(id=endpoint.id).deactivate("endpoint answered 410 Gone")
            return PermanentDeliveryError(f"webhook {where} 410: endpoint gone, switched off", status_code=410)
        if 300 <= response.status_code < 400:
            return PermanentDeliveryError(f"webhook {where} {response.status_code}: redirects are not followed",
                                          status_code=response.status_code)
        return error_for_status(f"webhook {where}", response.status_code, text[:200], response.headers)
