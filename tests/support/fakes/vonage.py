"""Fake Vonage SMS API, over https as the real one (the SDK builds `https://{rest_host}/sms/json`).

POST /sms/json with a form body, authenticated like the SDK does it: HTTP Basic with key and
secret, or, when a signature secret is configured, `api_key` + `timestamp` + `sig` (HMAC of the
sorted parameters) in the form. The answer is what Vonage sends: HTTP 200 with `message-count` and
`messages`, each with a `status` of "0" for accepted or an error code and `error-text` (1
throttled, 2 missing parameter, 3 invalid parameter, 4 bad credentials, 7 number barred, ...).
Numbers in `invalid_numbers` get 3, those in `barred` get 7; `answer_next()` queues other codes.
`delivery_receipt()` builds the signed DLR Vonage POSTs to a message's `callback`.
"""

import base64
import hmac
import json
import secrets
import time

from vonage_http_client.auth import Auth

from .server import FakeProvider

ERROR_TEXTS = {
    "1": "Throttled", "2": "Missing Parameters", "3": "Invalid Parameters", "4": "Bad Credentials",
    "5": "Internal Error", "6": "Invalid Message", "7": "Number Barred", "9": "Partner Quota Violation",
    "29": "Non-Whitelisted Destination",
}


def answer(messages):
    body = {"message-count": str(len(messages)), "messages": messages}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


class FakeVonage(FakeProvider):
    api_key = "fakevonagekey"
    api_secret = "fake-vonage-api-secret"
    signature_secret = "fake-vonage-signature-secret"
    signature_method = "sha256"
    from_number = "NotifyTest"

    def __init__(self, tls):
        super().__init__(tls=tls)
        self.invalid_numbers = set()
        self.barred = set()
        self.queued_statuses = []
        self.accepted = []  # (form, message-id) of every message taken

    def reset(self):
        super().reset()
        self.invalid_numbers.clear()
        self.barred.clear()
        self.queued_statuses.clear()
        self.accepted.clear()

    @property
    def host(self):
        """What the SDK calls the REST host: host and port, no scheme."""
        return self.url.removeprefix("https://")

    def answer_next(self, status, count=1):
        with self.lock:
            self.queued_statuses.extend([str(status)] * count)

    def signer(self):
        return Auth(api_key=self.api_key, signature_secret=self.signature_secret,
                    signature_method=self.signature_method)

    def authenticated(self, request, form):
        header = request.headers.get("authorization", "")
        basic = "Basic " + base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()
        if header and hmac.compare_digest(header, basic):
            return True
        if form.get("api_key") != self.api_key or "sig" not in form:
            return False
        if abs(time.time() - int(form.get("timestamp") or 0)) > 300:
            return False
        return self.signer().check_signature(dict(form))

    def handle(self, request):
        if request.method != "POST" or request.path != "/sms/json":
            return 404, {"Content-Type": "application/json"}, b'{"error-code":"404","error-code-label":"not found"}'
        form = request.form()
        if not self.authenticated(request, form):
            return answer([{"status": "4", "error-text": ERROR_TEXTS["4"]}])
        with self.lock:
            status = self.queued_statuses.pop(0) if self.queued_statuses else None
        to = form.get("to", "")
        if status is None:
            if not to or not form.get("from") or not form.get("text"):
                status = "2"
            elif not to.isdigit() or to in self.invalid_numbers:
                status = "3"
            elif to in self.barred:
                status = "7"
        if status not in (None, "0"):
            return answer([{"status": status, "error-text": ERROR_TEXTS.get(status, "Error")}])
        message_id = secrets.token_hex(8).upper()
        with self.lock:
            self.accepted.append((form, message_id))
        message = {"to": to, "message-id": message_id, "status": "0", "remaining-balance": "10.00000000",
                   "message-price": "0.03330000", "network": "23410"}
        if form.get("client-ref"):
            message["client-ref"] = form["client-ref"]
        return answer([message])

    def messages(self):
        return [form for form, _ in self.accepted]

    def delivery_receipt(self, index, status, err_code="0"):
        """The signed DLR for the index-th accepted message: (callback URL, form params)."""
        form, message_id = self.accepted[index]
        params = {
            "msisdn": form["to"], "to": form["from"], "network-code": "23410", "messageId": message_id,
            "price": "0.03330000", "status": status, "scts": time.strftime("%y%m%d%H%M"), "err-code": err_code,
            "api-key": self.api_key, "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
            "client-ref": form.get("client-ref", ""), "nonce": secrets.token_hex(8), "timestamp": str(int(time.time())),
        }
        params["sig"] = self.signer().sign_params(dict(params))
        return form.get("callback"), params
