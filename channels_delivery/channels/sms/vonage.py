"""SMS through Vonage's SMS API with the `vonage-sms` SDK: the second SMS provider, after Twilio.

Our delivery id travels as `client-ref`, and each message asks for its delivery receipt at
PUBLIC_BASE_URL/callbacks/vonage/status/ (signed; see callbacks.py).
"""

import math

import requests
from django.conf import settings
from vonage_http_client import HttpClient
from vonage_http_client.auth import Auth
from vonage_http_client.errors import HttpRequestError
from vonage_sms import Sms
from vonage_sms import SmsMessage as VonageMessage
from vonage_sms.errors import SmsError
from vonage_utils.errors import VonageError

from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError, error_for_status
from notifications.phone import InvalidPhoneNumber, normalise_e164, segments

# SMS API status codes worth a retry (https://developer.vonage.com/messaging/sms/guides/troubleshooting-sms):
# 1 throttled, 5 internal error, 10 too many existing binds. Every other non-zero code (2 missing
# parameter, 3 invalid number, 4 bad credentials, 6 invalid message, 7 number barred, 29
# non-whitelisted destination, ...) fails the same way every time.
TRANSIENT_CODES = {"1", "5", "10"}


class VonageSMS(Provider):
    name = "vonage"
    channel = "sms"

    def __init__(self):
        self._sms = None

    def is_configured(self):
        return bool(settings.VONAGE_API_KEY and settings.VONAGE_API_SECRET and settings.VONAGE_FROM)

    def sms(self):
        if self._sms is None:
            # Key and secret (HTTP Basic), never the signature secret: vonage-sms 1.2 signs every
            # field of its message model, the unset ones as "None", which requests then leaves out
            # of the form, so the signature cannot match what arrives. The signature secret only
            # verifies delivery receipts (callbacks/vonage.py).
            auth = Auth(api_key=settings.VONAGE_API_KEY, api_secret=settings.VONAGE_API_SECRET)
            http_client = HttpClient(auth, {
                "rest_host": settings.VONAGE_REST_HOST,
                "timeout": max(1, math.ceil(settings.PROVIDER_TIMEOUT_SECONDS)),
                # Adapters never retry: the SDK re-sends after a dropped connection up to
                # pool_maxsize times, which could send one SMS twice; one connection, one try.
                "pool_maxsize": 1,
                "max_retries": 0,
            })
            if settings.VONAGE_CA_BUNDLE:  # a TLS-intercepting proxy, or the fake in tests
                session = http_client._session  # the SDK has no option for it
                session.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment wins over verify
                session.verify = settings.VONAGE_CA_BUNDLE
            self._sms = Sms(http_client)
        return self._sms

    @staticmethod
    def status_callback_url():
        return f"{settings.PUBLIC_BASE_URL}/callbacks/vonage/status/"

    def build(self, delivery_id, message):
        try:
            to = normalise_e164(message.to, settings.SMS_DEFAULT_REGION or None)
        except InvalidPhoneNumber as error:
            raise PermanentDeliveryError(f"SMS to an invalid number: {error}") from error
        encoding, _count = segments(message.text)
        return VonageMessage(
            to=to.removeprefix("+"),  # Vonage wants E.164 digits without the plus
            from_=settings.VONAGE_FROM,
            text=message.text,
            type="unicode" if encoding == "UCS-2" else "text",
            client_ref=str(delivery_id),
            status_report_req=True,
            callback=self.status_callback_url(),
        )

    def send(self, delivery_id, message):
        sms_message = self.build(delivery_id, message)
        encoding, segment_count = segments(sms_message.text)
        sms = self.sms()
        try:
            response = sms.send(sms_message)
        except SmsError as error:
            raise self.error_for(sms.http_client.last_response) from error
        except HttpRequestError as error:
            response = error.response
            raise error_for_status("vonage", response.status_code, response.text[:200], response.headers) from error
        except requests.Timeout as error:
            raise TransientDeliveryError(f"Vonage timed out ({type(error).__name__})") from error
        except requests.ConnectionError as error:
            raise TransientDeliveryError(f"Vonage unreachable ({type(error).__name__})") from error
        except VonageError as error:
            raise PermanentDeliveryError(f"Vonage: {error}") from error
        [sent] = response.messages
        return SendResult(
            provider_message_id=sent.message_id or "",
            status_code="0",
            payload={"to": sms_message.to, "encoding": encoding, "segments": segment_count,
                     "vonage_price": sent.message_price, "vonage_network": sent.network},
        )

    @staticmethod
    def error_for(response):
        """The one place Vonage's answers are sorted: HTTP 200 with a status code per message."""
        try:
            [answer] = response.json()["messages"][:1]
        except (ValueError, KeyError, TypeError, AttributeError):
            return TransientDeliveryError("Vonage: unreadable answer")
        code, text = str(answer.get("status", "")), answer.get("error-text", "")
        detail = f"Vonage status {code}: {text}"
        if code in TRANSIENT_CODES:
            return TransientDeliveryError(detail, status_code=code)
        return PermanentDeliveryError(detail, status_code=code)
