"""Native mobile push through Firebase Cloud Messaging HTTP v1, side by side with Web Push.

google-auth turns the service account key into OAuth2 access tokens (a signed JWT-bearer grant
at the key's token_uri), caches them for their hour and refreshes them on expiry or a 401;
AuthorizedSession attaches them. Each device token of the user gets the message; one answering
UNREGISTERED is reported gone, so the domain switches it off.
"""

import json

import requests
from django.conf import settings
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

from channels_delivery.channels.push.models import MobileDevice
from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.errors import (
    PermanentDeliveryError,
    TransientDeliveryError,
    error_for_status,
    retry_after_seconds,
)
from channels_delivery.engine.fanout import settle

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
ANDROID_PRIORITY = {"low": "normal", "medium": "normal", "high": "high", "urgent": "high"}
APNS_PRIORITY = {"low": "5", "medium": "5", "high": "10", "urgent": "10"}
# FcmError codes (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode).
TRANSIENT_CODES = {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}
GONE_CODES = {"UNREGISTERED"}


class FirebaseMessaging(Provider):
    name = "fcm"
    channel = "push"

    def __init__(self):
        self._session = None

    def is_configured(self):
        return bool(settings.FCM_CREDENTIALS_JSON)

    def has_targets(self, message):
        return any(device.get("provider", "fcm") == "fcm" for device in message.devices)

    def session(self):
        if self._session is None:
            try:
                info = json.loads(settings.FCM_CREDENTIALS_JSON)
                credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
            except (ValueError, KeyError, TypeError) as error:
                raise PermanentDeliveryError(
                    f"FCM_CREDENTIALS_JSON is not a service account key ({type(error).__name__})") from error
            session = AuthorizedSession(credentials, refresh_timeout=settings.PROVIDER_TIMEOUT_SECONDS)
            session.trust_env = False
            project = settings.FCM_PROJECT_ID or info.get("project_id", "")
            self._session = (session, f"{settings.FCM_API_BASE}/v1/projects/{project}/messages:send")
        return self._session

    @staticmethod
    def body(token, message):
        priority = message.get("priority", "medium")
        data = {key: str(message[key]) for key in ("notification_id", "category", "url") if message.get(key)}
        if message.get("data"):
            data["data"] = json.dumps(message["data"], separators=(",", ":"))  # FCM data values are strings
        return {"message": {
            "token": token,
            "notification": {"title": message.get("title", ""), "body": message.get("body", "")},
            "data": data,
            "android": {"priority": ANDROID_PRIORITY.get(priority, "normal"), "ttl": f"{settings.PUSH_TTL_SECONDS}s"},
            "apns": {"headers": {"apns-priority": APNS_PRIORITY.get(priority, "5")}},
        }}

    def send(self, delivery_id, message):
        devices = [device for device in message.devices if device.get("provider", "fcm") == "fcm"]
        content = message.to_dict()
        outcomes = [(device["id"], *self.send_one(device, content)) for device in devices]
        payload = settle(self.name, outcomes)
        return SendResult(provider_message_id=str(delivery_id), status_code="200", payload=payload)

    def send_one(self, device, message):
        session, url = self.session()
        try:
            response = session.post(url, json=self.body(device["token"], message),
                                    timeout=settings.PROVIDER_TIMEOUT_SECONDS)
        except google_exceptions.RefreshError as error:
            # The token endpoint refused the key (revoked, wrong project): no retry fixes that.
            retryable = getattr(error, "retryable", False)
            error_class = TransientDeliveryError if retryable else PermanentDeliveryError
            return error_class(f"FCM OAuth2 token refused ({str(error)[:120]})"), {}
        except (google_exceptions.TransportError, requests.Timeout, requests.ConnectionError) as error:
            return TransientDeliveryError(f"FCM unreachable ({type(error).__name__})"), {}
        if response.status_code == 200:
            return None, {"name": response.json().get("name", "")}
        return self.error_for(device, response), {"status": response.status_code}

    @staticmethod
    def error_for(device, response):
        """The one place FCM's answers are sorted; an unregistered token is reported gone."""
        try:
            error = response.json()["error"]
            codes = [d.get("errorCode") for d in error.get("details", []) if "errorCode" in d]
            code, text = (codes[0] if codes else error.get("status", "")), error.get("message", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            code, text = "", response.text[:200]
        detail = f"fcm {response.status_code} {code}: {text}"[:300]
        if code in GONE_CODES:
            MobileDevice.objects.filter(id=device["id"]).deactivate(f"FCM answered {code}")
            return PermanentDeliveryError(detail, status_code=response.status_code)
        if code in TRANSIENT_CODES:
            return TransientDeliveryError(detail, status_code=response.status_code,
                                          retry_after=retry_after_seconds(response.headers))
        return error_for_status("fcm", response.status_code, f"{code}: {text}"[:200], response.headers)
