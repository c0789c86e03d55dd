"""The OpenAPI schema: every operation documents the error answers it can give, in the one format."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from notifications.api.errors import ErrorSerializer

ERRORS = {
    "400": "Invalid input: field errors under error.fields.",
    "401": "Not authenticated.",
    "403": "Not allowed for this caller.",
    "404": "Not found, or not the caller's.",
    "413": "Request body too large.",
    "415": "Unsupported media type.",
    "422": "Idempotency-Key reused with a different body.",
    "429": "Throttled; Retry-After says when to try again.",
    "503": "Postgres, Redis or the broker is unavailable; nothing was accepted. Retry-After says when to try again.",
}
BODY_ERRORS = {"413", "415"}
POST_ERRORS = {"422"}


class ApiAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        has_body = self.method in ("POST", "PUT", "PATCH")
        for code, description in ERRORS.items():
            if code in responses or (code in BODY_ERRORS and not has_body) or (
                code in POST_ERRORS and self.method != "POST"
            ):
                continue
            response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
            response["description"] = description
            responses[code] = response
        return responses


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "notifications.api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "nk_<prefix>.<secret>",
                "description": "An API client's key (shown once when the client is created)."}
