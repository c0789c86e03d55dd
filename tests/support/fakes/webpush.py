"""Fake Web Push service (RFC 8030) that checks what a browser's push service checks.

A test subscribes like a browser: the fake makes the subscription's P-256 key pair and auth
secret and keeps the private key. A push must carry a valid VAPID token (RFC 8292) signed by the
expected application server key, for this service's origin, not expired; its body must decrypt
(RFC 8291, aes128gcm) with the subscription's private key, proving it was encrypted for it.
Unknown subscriptions get 404, expired ones 410, as real push services answer.
"""

import base64
import json
import secrets
import time

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from tests.support.fakes.server import FakeProvider


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_vapid_keys():
    """(private key as base64url raw, public key as base64url uncompressed point)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(private), b64url(public)


class FakePushService(FakeProvider):
    def __init__(self, vapid_public_key):
        super().__init__()
        self.vapid_public_key = vapid_public_key
        self.subscriptions = {}  # token -> (private key, auth secret)
        self.expired = set()
        self.pushes = []  # (token, decrypted payload, headers)

    def reset(self):
        super().reset()
        self.subscriptions.clear()
        self.expired.clear()
        self.pushes.clear()

    def subscribe(self):
        """A browser's PushSubscription.toJSON(): endpoint and keys."""
        token = secrets.token_urlsafe(16)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        self.subscriptions[token] = (key, auth)
        public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{self.url}/push/{token}", "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}

    def expire(self, endpoint):
        self.expired.add(endpoint.rsplit("/", 1)[1])

    def vapid_error(self, authorization):
        try:
            if not Vapid02.verify(authorization):
                return "bad signature"
        except Exception as error:  # any malformed header is a 401, as a push service answers
            return f"unreadable VAPID header: {error}"
        params = dict(part.split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
        if params["k"] != self.vapid_public_key:
            return "signed by another application server key"
        claims = json.loads(b64url_decode(params["t"].split(".")[1]))
        if claims.get("aud") != self.url:
            return f"aud {claims.get('aud')} is not this push service"
        if not time.time() < claims.get("exp", 0) <= time.time() + 24 * 3600:
            return "expired or too long-lived token"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return "sub must be a mailto: or https: URL"
        return None

    def handle(self, request):
        token = request.path.removeprefix("/push/")
        if request.method != "POST" or not request.path.startswith("/push/") or token not in self.subscriptions:
            return 404, {}, b"subscription not found"
        if token in self.expired:
            return 410, {}, b"push subscription has unsubscribed or expired"
        problem = self.vapid_error(request.headers.get("authorization", ""))
        if problem:
            return 401 if "unreadable" in problem or "bad" in problem else 403, {}, problem.encode()
        if request.headers.get("content-encoding") != "aes128gcm" or "ttl" not in request.headers:
            return 400, {}, b"aes128gcm body and TTL header required"
        if len(request.body) > 4096:
            return 413, {}, b"payload too large"
        key, auth = self.subscriptions[token]
        try:
            payload = http_ece.decrypt(request.body, private_key=key, auth_secret=auth, version="aes128gcm")
        except Exception:  # noqa: BLE001 - a body that does not decrypt is the sender's fault
            return 400, {}, b"payload does not decrypt for this subscription"
        with self.lock:
            self.pushes.append((token, json.loads(payload), request.headers))
        return 201, {"Location": f"{self.url}/message/{secrets.token_hex(8)}"}, b""
