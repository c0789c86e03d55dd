"""Fake Firebase Cloud Messaging HTTP v1, with the OAuth2 token endpoint google-auth calls.

POST /token: the service account's JWT-bearer grant (RFC 7523) as google-auth sends it: a form
with grant_type `urn:ietf:params:oauth:grant-type:jwt-bearer` and an RS256 `assertion` whose
signature (checked with the service account's public key), `iss`, `aud` (Google's token endpoint) and `scope`
(firebase.messaging) must hold; answers an access token good for an hour.

POST /v1/projects/{project}/messages:send with `Authorization: Bearer <that token>` and
{"message": {"token": ..., "notification": {...}, "data": {str: str}, "android": ..., "apns": ...}},
validated as FCM does; answers {"name": "projects/{project}/messages/<id>"} or FCM's error shape
{"error": {"code", "message", "status", "details": [{"@type": ...FcmError, "errorCode": ...}]}}:
tokens in `unregistered` get 404 UNREGISTERED, malformed ones 400 INVALID_ARGUMENT.
"""

import json
import secrets
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt as google_jwt

from .server import FakeProvider

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# google-auth addresses its assertion to Google's token endpoint, wherever token_uri points.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
GRPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def fcm_error(code, message, error_code=None, headers=None):
    error = {"code": code, "message": message, "status": GRPC_STATUS.get(code, "UNKNOWN")}
    if error_code:
        error["details"] = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}]
    return code, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}, json.dumps({"error": error}).encode()


class FakeFCM(FakeProvider):
    project_id = "notify-test-project"

    def __init__(self):
        super().__init__()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.public_key_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        self.key_id = secrets.token_hex(20)
        self.client_email = f"notify@{self.project_id}.iam.gserviceaccount.com"
        self.unregistered = set()
        self.tokens_issued = {}  # access token -> expiry
        self.token_requests = 0

    def reset(self):
        super().reset()
        self.unregistered.clear()
        self.tokens_issued.clear()
        self.token_requests = 0

    def service_account_info(self):
        """The JSON key file Firebase's console hands out, its token_uri pointing here."""
        return {
            "type": "service_account", "project_id": self.project_id, "private_key_id": self.key_id,
            "private_key": self.private_key_pem, "client_email": self.client_email, "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": f"{self.url}/token",
        }

    def handle(self, request):
        if request.method == "POST" and request.path == "/token":
            return self.token(request)
        prefix = f"/v1/projects/{self.project_id}/messages:send"
        if request.method == "POST" and request.path == prefix:
            return self.send(request)
        return fcm_error(404, "Requested entity was not found.")

    def token(self, request):
        with self.lock:
            self.token_requests += 1
        form = request.form()
        oauth_error = (400, {"Content-Type": "application/json"})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return *oauth_error, b'{"error":"unsupported_grant_type"}'
        try:
            claims = google_jwt.decode(form.get("assertion", ""), certs={self.key_id: self.public_key_pem},
                                       audience=[GOOGLE_TOKEN_AUDIENCE, f"{self.url}/token"])
        except ValueError as error:
            return *oauth_error, json.dumps({"error": "invalid_grant", "error_description": str(error)}).encode()
        if claims.get("iss") != self.client_email or SCOPE not in claims.get("scope", "").split():
            return *oauth_error, b'{"error":"invalid_scope"}'
        access_token = "ya29." + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens_issued[access_token] = time.time() + 3600
        body = {"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def send(self, request):
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.tokens_issued.get(bearer, 0) < time.time():
            return fcm_error(401, "Request had invalid authentication credentials.")
        try:
            message = json.loads(request.body)["message"]
        except (ValueError, KeyError, TypeError):
            return fcm_error(400, "Invalid JSON payload received.")
        targets = [key for key in ("token", "topic", "condition") if key in message]
        if len(targets) != 1:
            return fcm_error(400, "Exactly one of token, topic or condition must be set.", "INVALID_ARGUMENT")
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return fcm_error(400, "Invalid value at 'message.data': values must be strings.", "INVALID_ARGUMENT")
        token = message.get("token", "")
        if "token" in message and (len(token) < 20 or " " in token):
            return fcm_error(400, "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT")
        if token in self.unregistered:
            return fcm_error(404, "Requested entity was not found.", "UNREGISTERED")
        name = f"projects/{self.project_id}/messages/0:{int(time.time() * 1000)}%{secrets.token_hex(8)}"
        return 200, {"Content-Type": "application/json"}, json.dumps({"name": name}).encode()

    def messages(self):
        return [request.json()["message"] for request in self.requests if request.path.endswith("messages:send")]
