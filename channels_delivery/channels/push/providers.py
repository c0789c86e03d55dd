"""Web Push with `pywebpush`: the payload encrypted for each subscription, signed with VAPID."""

import json

import requests
from django.conf import settings
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError, error_for_status
from channels_delivery.engine.fanout import settle
from channels_delivery.engine.netguard import BlockedAddressError, guarded_session
from notifications.models import PushSubscription

URGENCY = {"low": "low", "medium": "normal", "high": "high", "urgent": "high"}
GONE = (404, 410)
# RFC 8291 leaves 3993 bytes of plaintext in one 4096-byte aes128gcm record; stay below it.
MAX_PAYLOAD_BYTES = 3800


class WebPush(Provider):
    name = "webpush"
    channel = "push"

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
            error, detail = self.send_one(subscription, data, headers)
            outcomes.append((subscription["id"], error, detail))
        payload = settle(self.name, outcomes)
        return SendResult(provider_message_id=str(delivery_id), status_code="201", payload=payload)

    def send_one(self, subscription, data, headers):
        info = {"endpoint": subscription["endpoint"], "keys": subscription["keys"]}
        try:
            response = webpush(
                info, data, vapid_private_key=self.vapid(), vapid_claims={"sub": settings.VAPID_SUBJECT},
                ttl=settings.PUSH_TTL_SECONDS, headers=headers, timeout=settings.PROVIDER_TIMEOUT_SECONDS,
                requests_session=guarded_session(),
            )
        except WebPushException as error:
            return self.error_for(subscription, error), {}
        except BlockedAddressError as error:
            return PermanentDeliveryError(f"push endpoint refused: {error}"), {}
        # Texts name the error's kind only: an endpoint URL is a capability and must not leak.
        except requests.Timeout as error:
            return TransientDeliveryError(f"push service timed out ({type(error).__name__})"), {}
        except requests.ConnectionError as error:
            return TransientDeliveryError(f"push service unreachable ({type(error).__name__})"), {}
        return None, {"status": response.status_code, "location": response.headers.get("Location", "")}

    @staticmethod
    def error_for(subscription, error):
        """The one place push service answers are sorted; a dead subscription is reported gone."""
        response = error.response
        if response is None:
            return PermanentDeliveryError(f"web push: {error.message}")
        status = response.status_code
        if status in GONE:
            PushSubscription.objects.filter(id=subscription["id"]).deactivate(f"push service answered {status}")
            return PermanentDeliveryError(f"webpush {status}: subscription expired or unsubscribed",
                                          status_code=status)
        return error_for_status("webpush", status, response.text[:300], response.headers)
