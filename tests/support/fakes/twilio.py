"""Fake Twilio Messages API: POST /2010-04-01/Accounts/{Sid}/Messages.json with basic auth and a
form body, answered like Twilio does (201 with the message resource, or a JSON error with code).

Numbers listed in `invalid_numbers` get 21211 and those in `unsubscribed` get 21610, both 400s,
as the real API answers them.
"""

import base64
import json
import re
import secrets
from datetime import datetime, timezone
from email.utils import format_datetime

from twilio.request_validator import RequestValidator

from notifications.phone import segments
from tests.support.fakes.server import FakeProvider

MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Messages\.json$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def twilio_error(status, code, message):
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class FakeTwilio(FakeProvider):
    account_sid = "AC" + "0123456789abcdef" * 2
    auth_token = "fake-twilio-auth-token"
    from_number = "+15005550006"

    def __init__(self):
        super().__init__()
        self.invalid_numbers = set()
        self.unsubscribed = set()
        self.created = []  # the message resources answered, in order
        self.callback_urls = {}  # message sid -> its StatusCallback

    def reset(self):
        super().reset()
        self.created.clear()
        self.callback_urls.clear()
        self.invalid_numbers.clear()
        self.unsubscribed.clear()

    def handle(self, request):
        match = MESSAGES_PATH.match(request.path)
        if request.method != "POST" or not match:
            return twilio_error(404, 20404, "The requested resource was not found")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if match["sid"] != self.account_sid or request.headers.get("authorization") != f"Basic {expected}":
            return twilio_error(401, 20003, "Authenticate")
        form = request.form()
        to, body = form.get("To", ""), form.get("Body", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if not E164.match(to) or to in self.invalid_numbers:
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.unsubscribed:
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        resource = self.resource(form)
        with self.lock:
            self.created.append(resource)
            self.callback_urls[resource["sid"]] = form.get("StatusCallback")
        return 201, {"Content-Type": "application/json"}, json.dumps(resource).encode()

    def resource(self, form):
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(timezone.utc), usegmt=True)
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": form["Body"],
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"), "num_media": "0",
            "num_segments": str(segments(form["Body"])[1]), "price": None, "price_unit": "USD", "sid": sid,
            "status": "queued", "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            "to": form["To"], "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }

    def messages(self):
        return [request.form() for request in self.requests]

    def status_callback(self, message, status, error_code=None):
        """What Twilio POSTs to a created message's StatusCallback: (url, form params, X-Twilio-Signature)."""
        sid = message["sid"]
        params = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "From": message["from"] or "",
                  "To": message["to"], "MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status}
        if error_code:
            params["ErrorCode"] = str(error_code)
        url = self.callback_urls[sid]
        return url, params, RequestValidator(self.auth_token).compute_signature(url, params)
