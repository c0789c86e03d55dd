"""SMS through Twilio's Messages API with the `twilio` SDK."""

import logging
import threading
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.errors import (
    PermanentDeliveryError,
    TransientDeliveryError,
    is_transient_status,
    retry_after_seconds,
)
from notifications.phone import InvalidPhoneNumber, normalise_e164, segments

# Twilio error codes that no retry can fix (https://www.twilio.com/docs/api/errors).
PERMANENT_CODES = {
    21211: "invalid 'To' phone number",
    21408: "region not enabled for this account",
    21610: "recipient unsubscribed (replied STOP)",
    21612: "cannot route to this number",
    21614: "not a mobile number",
}


# The SDK logs each request line and response header at INFO: noise on a busy SMS worker.
http_logger = logging.getLogger("channels_delivery.channels.sms.providers.twilio_http")
http_logger.setLevel(logging.WARNING)


class RoutedHttpClient(TwilioHttpClient):
    """Twilio's own HTTP client, sent to TWILIO_API_BASE (a proxy, or the fake in tests).

    It keeps the headers of the last answer: the SDK's exception drops them, and a 429's
    Retry-After is in there.
    """

    def __init__(self, base_url, timeout):
        super().__init__(timeout=timeout, logger=http_logger)
        self.base = urlsplit(base_url)
        self.local = threading.local()

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        url = urlunsplit((self.base.scheme, self.base.netloc, self.base.path.rstrip("/") + parts.path, parts.query, ""))
        self.local.headers = {}
        response = super().request(method, url, *args, **kwargs)
        self.local.headers = dict(response.headers or {})
        return response

    def last_headers(self):
        return getattr(self.local, "headers", {})


class TwilioSMS(Provider):
    name = "twilio"
    channel = "sms"

    def __init__(self):
        self._client = None

    def is_configured(self):
        return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN)

    def client(self):
        if self._client is None:
            http_client = RoutedHttpClient(settings.TWILIO_API_BASE, settings.PROVIDER_TIMEOUT_SECONDS)
            self._client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)
        return self._client

    @staticmethod
    def status_callback_url(delivery_id):
        return f"{settings.PUBLIC_BASE_URL}/callbacks/twilio/status/{delivery_id}/"

    def build(self, delivery_id, message):
        try:
            to = normalise_e164(message.to, settings.SMS_DEFAULT_REGION or None)
        except InvalidPhoneNumber as error:
            raise PermanentDeliveryError(f"SMS to an invalid number: {error}") from error
        params = {"to": to, "body": message.text, "status_callback": self.status_callback_url(delivery_id)}
        if settings.TWILIO_MESSAGING_SERVICE_SID:
            params["messaging_service_sid"] = settings.TWILIO_MESSAGING_SERVICE_SID
        else:
            params["from_"] = settings.TWILIO_FROM_NUMBER
        return params

    def send(self, delivery_id, message):
        params = self.build(delivery_id, message)
        encoding, segment_count = segments(params["body"])
        client = self.client()
        try:
            sent = client.messages.create(**params)
        except TwilioRestException as error:
            raise self.error_for(error, client.http_client.last_headers()) from error
        except requests.Timeout as error:
            raise TransientDeliveryError(f"Twilio timed out: {error}") from error
        except (requests.ConnectionError, ConnectionError) as error:
            raise TransientDeliveryError(f"Twilio unreachable: {error}") from error
        except TwilioException as error:
            raise PermanentDeliveryError(f"Twilio: {error}") from error
        return SendResult(
            provider_message_id=sent.sid,
            status_code=sent.status or "queued",
            payload={
                "to": params["to"],
                "encoding": encoding,
                "segments": segment_count,
                "twilio_status": sent.status,
                "twilio_segments": sent.num_segments,
            },
        )

    @staticmethod
    def error_for(error, headers):
        """The one place Twilio failures are sorted."""
        code = error.code
        detail = f"Twilio {error.status} (code {code}): {PERMANENT_CODES.get(code) or error.msg}"
        if code in PERMANENT_CODES:
            return PermanentDeliveryError(detail, status_code=code)
        if is_transient_status(error.status):
            return TransientDeliveryError(detail, status_code=error.status, retry_after=retry_after_seconds(headers))
        return PermanentDeliveryError(detail, status_code=code or error.status)
