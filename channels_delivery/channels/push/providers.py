"""Web Push: the payload encrypted for each subscription (RFC 8291, with pywebpush's encoder) and
signed with VAPID (RFC 8292, py_vapid). The request itself goes through the guarded session
(netguard.bounded_post), not pywebpush's: an endpoint is a URL a user gave us, and pywebpush
would read its whole answer, inflated, with no deadline."""

import json
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from py_vapid import Vapid
from pywebpush import WebPusher

from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.circuit import through_destination_breaker
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError, error_for_status
from channels_delivery.engine.fanout import settle
from channels_delivery.engine.netguard import BlockedAddressError, bounded_post
from notifications.models import PushSubscription

URGENCY = {"low": "low", "medium": "normal", "high": "high", "urgent": "high"}
GONE = (404, 410)
# RFC 8291 leaves 3993 bytes of plaintext in one 4096-byte aes128gcm record; stay below it.
MAX_PAYLOAD_BYTES = 3800
VAPID_TOKEN_SECONDS = 12 * 3600  # push services refuse tokens valid for more than 24 hours


class WebPush(Provider):
    name = "webpush"
    channel = "push"
    shared_breaker = False

    def __init__(self):
        self._vapid = None

    def is_configured(self):
        return bool(settings.VAPID_PRIVATE_KEY)

    def has_targets(self, message):
        return bool(message.subscriptions)

    def vapid(self):
        if self._vapid is None:
            try:
                self._vapid = Vapid.from_string(settings.VAPID_PRIVATE_KEY)
            except Exception as error:  # py_vapid raises anything from binascii to ValueError
                raise PermanentDeliveryError(f"VAPID_PRIVATE_KEY is not a usable key ({type(error).__name__})") from error
        return self._vapid

    @staticmethod
    def payload(message):
        """The JSON the service worker receives, kept under what push services accept (4 KB)."""
        content = {
            "title": message.title, "body": message.body, "url": message.url, "data": message.data,
            "notification_id": message.notification_id, "category": message.category,
        }
        data = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
        if len(data.encode()) > MAX_PAYLOAD_BYTES and "data" in content:
            content["data"], content["truncated"] = {}, True
            data = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
        while len(data.encode()) > MAX_PAYLOAD_BYTES and len(content.get("body", "")) > 1:
            overflow = len(data.encode()) - MAX_PAYLOAD_BYTES
            content["body"] = content["body"][: max(1, len(content["body"]) - overflow - 1)] + "…"
            content["truncated"] = True
            data = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
        return data

    def send(self, delivery_id, message):
        data = self.payload(message)
        headers = {"Urgency": URGENCY.get(message.priority, "normal")}
        outcomes = []
        for subscription in message.subscriptions:
            error, detail = through_destination_breaker(
                self.name, subscription["endpoint"],
                lambda subscription=subscription: self.send_one(subscription, data, headers),
            )
            outcomes.append((subscription["id"], error, detail))
        payload = settle(self.name, outcomes)
        return SendResult(provider_message_id=str(delivery_id), status_code="201", payload=payload)

    def request_for(self, subscription, data, headers):
        """URL, body and headers of one push: encrypted for the subscription, VAPID-signed."""
        endpoint = subscription["endpoint"]
        parts = urlsplit(endpoint)
        body = WebPusher({"endpoint": endpoint, "keys": subscription["keys"]}).encode(data.encode(), "aes128gcm")["body"]
        claims = {"sub": settings.VAPID_SUBJECT, "aud": f"{parts.scheme}://{parts.netloc}",
                  "exp": int(time.time()) + VAPID_TOKEN_SECONDS}
        headers = {**headers, "Content-Encoding": "aes128gcm", "TTL": str(settings.PUSH_TTL_SECONDS),
                   "Content-Type": "application/octet-stream", **self.vapid().sign(claims)}
        return endpoint, body, headers

    def send_one(self, subscription, data, headers):
        try:
            endpoint, body, headers = self.request_for(subscription, data, headers)
        except (ValueError, TypeError) as error:  # keys that do not decode or are not on the curve
            return PermanentDeliveryError(f"push subscription keys unusable ({type(error).__name__})"), {}
        try:
            response, answer = bounded_post(
                endpoint, data=body, headers=headers,
                timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.PROVIDER_TIMEOUT_SECONDS),
                deadline=settings.OUTBOUND_DEADLINE_SECONDS, limit=settings.OUTBOUND_RESPONSE_MAX_BYTES,
            )
        except BlockedAddressError as error:
            return PermanentDeliveryError(f"push endpoint refused: {error}"), {}
        # Texts name the error's kind only: an endpoint URL is a capability and must not leak.
        except requests.Timeout as error:
            return TransientDeliveryError(f"push service timed out ({type(error).__name__})"), {}
        except requests.ConnectionError as error:
            return TransientDeliveryError(f"push service unreachable ({type(error).__name__})"), {}
        except requests.RequestException as error:
            return PermanentDeliveryError(f"push request failed ({type(error).__name__})"), {}
        if response.status_code > 202:
            return self.error_for(subscription, response, answer.decode(errors="replace")), {}
        return None, {"status": response.status_code, "location": response.headers.get("Location", "")}

    @staticmethod
    def error_for(subscription, response, text):
        """The one place push service answers are sorted; a dead subscription is reported gone.
        Redirects are not followed (an endpoint is where the push goes, not a place to start)."""
        status = response.status_code
        if status in GONE:
            PushSubscription.objects.filter(id=subscription["id"]).deactivate(f"push service answered {status}")
            return PermanentDeliveryError(f"webpush {status}: subscription expired or unsubscribed",
                                          status_code=status)
        if 300 <= status < 400:
            return PermanentDeliveryError(f"webpush {status}: redirects are not followed", status_code=status)
        return error_for_status("webpush", status, text[:300], response.headers)
