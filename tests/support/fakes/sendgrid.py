"""Fake SendGrid v3: POST /v3/mail/send answers 202 with an X-Message-Id, as the real API does."""

import json
import uuid

from tests.support.fakes.server import FakeProvider


class FakeSendGrid(FakeProvider):
    api_key = "SG.fake-key-for-tests"

    def handle(self, request):
        if request.method != "POST" or request.path != "/v3/mail/send":
            return 404, {}, b'{"errors":[{"message":"not found"}]}'
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"Content-Type": "application/json"}, b'{"errors":[{"message":"authorization required"}]}'
        try:
            mail = json.loads(request.body)
        except ValueError:
            return 400, {"Content-Type": "application/json"}, b'{"errors":[{"message":"Bad Request"}]}'
        if not mail.get("personalizations") or not mail.get("from") or not mail.get("subject"):
            return 400, {"Content-Type": "application/json"}, b'{"errors":[{"message":"missing fields"}]}'
        return 202, {"X-Message-Id": uuid.uuid4().hex[:22]}, b""

    def mails(self):
        return [request.json() for request in self.requests]
