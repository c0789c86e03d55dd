"""A receiver of our webhooks, verifying each one as a customer would: `standardwebhooks`.

Each endpoint has its own path and secret; an unverifiable request gets 401 and is not accepted.
"""

import hmac
import secrets
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.fakes.server import FakeProvider


class FakeWebhookReceiver(FakeProvider):
    def __init__(self):
        super().__init__()
        self.secrets = {}  # path -> secret
        self.events = []  # (path, verified payload, headers)

    def reset(self):
        super().reset()
        self.secrets.clear()
        self.events.clear()

    def endpoint(self, secret, host=None):
        """A new endpoint URL verifying with `secret` (host: another name for 127.0.0.1)."""
        path = f"/hooks/{secrets.token_hex(6)}"
        self.secrets[path] = secret
        host_port = self.url.removeprefix("http://")
        if host:
            host_port = f"{host}:{self.server.server_address[1]}"
        return f"http://{host_port}{path}"

    def handle(self, request):
        secret = self.secrets.get(request.path)
        if request.method not in ("POST", "PUT") or secret is None:
            return 404, {}, b"no such endpoint"
        try:
            if request.headers.get("content-type") == "application/x-www-form-urlencoded":
                payload = self.verify_form(Webhook(secret), request)
            else:
                payload = Webhook(secret).verify(request.body, request.headers)
        except WebhookVerificationError as error:
            return 401, {}, str(error).encode()
        with self.lock:
            self.events.append((request.path, payload, request.headers))
        return 204, {}, b""

    @staticmethod
    def verify_form(webhook, request):
        """standardwebhooks signs any body; its verify() also parses it as JSON, so a form body is
        checked with its sign() the way verify() does it, then parsed as a form."""
        headers = request.headers
        timestamp = datetime.fromtimestamp(int(headers.get("webhook-timestamp", "0")), tz=timezone.utc)
        if abs((datetime.now(tz=timezone.utc) - timestamp).total_seconds()) > 300:
            raise WebhookVerificationError("Message timestamp too old")
        expected = webhook.sign(headers.get("webhook-id", ""), timestamp, request.body.decode()).split(",", 1)[1]
        given = [part.split(",", 1)[1] for part in headers.get("webhook-signature", "").split() if "," in part]
        if not any(hmac.compare_digest(expected, signature) for signature in given):
            raise WebhookVerificationError("No matching signature found")
        return request.form()
