"""A receiver of our webhooks, verifying each one as a customer would: `standardwebhooks`.

Each endpoint has its own path and secret; an unverifiable request gets 401 and is not accepted.
"""

import secrets

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
        if request.method != "POST" or secret is None:
            return 404, {}, b"no such endpoint"
        try:
            payload = Webhook(secret).verify(request.body, request.headers)
        except WebhookVerificationError as error:
            return 401, {}, str(error).encode()
        with self.lock:
            self.events.append((request.path, payload, request.headers))
        return 204, {}, b""
