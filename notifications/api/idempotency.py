"""`Idempotency-Key` on POSTs that create: the first answer is replayed for 24 hours.

The record is inserted first, in the same transaction as the work and its answer. A concurrent
request with the same key waits on the unique index until the first commits, then replays its
answer; if the first rolls back (an error), the second simply runs. Scoped per API client, or per
user for callers without one. Errors (4xx/5xx raised as exceptions) are not recorded, so a
corrected retry with the same key goes through.
"""

import functools
import hashlib
import json

from django.db import IntegrityError, transaction
from kombu.exceptions import OperationalError as BrokerUnavailable
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from notifications.api.auth import api_client_of
from notifications.api.errors import Unprocessable
from notifications.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    type={"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": r"\S"},
    location=OpenApiParameter.HEADER,
    required=False,
    description="Replays the first answer to a request with the same key for 24 hours; "
    "the same key with a different body is a 422.",
)


class KeyReused(Unprocessable):
    default_detail = "This Idempotency-Key was used with a different request."
    default_code = "idempotency_key_reused"


def request_fingerprint(request):
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _scope(request):
    client = api_client_of(request)
    return {"client": client, "user": None} if client is not None else {"client": None, "user": request.user}


def _claim(scope, key, fingerprint):
    """Insert the record, or return the live one that holds this key."""
    IdempotencyRecord.objects.filter(**scope, key=key).expired().delete()
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(**scope, key=key, request_hash=fingerprint)
            return None
    except IntegrityError:
        return IdempotencyRecord.objects.get(**scope, key=key)


def idempotent(redact=()):
    """Decorate a view method that creates. `redact` names response fields never stored (secrets
    shown once): a replay answers without them."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(view, request, *args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return method(view, request, *args, **kwargs)
            if not key.strip() or len(key) > MAX_KEY_LENGTH:
                raise ValidationError({HEADER: [f"Give 1 to {MAX_KEY_LENGTH} characters."]})
            fingerprint = request_fingerprint(request)
            scope = _scope(request)
            try:
                return _run_once(view, request, args, kwargs, method, scope, key, fingerprint, redact)
            except BrokerUnavailable:
                # The work was withdrawn after commit (the broker refused it): so is its answer.
                IdempotencyRecord.objects.filter(**scope, key=key, request_hash=fingerprint).delete()
                raise

        return wrapper

    return decorate


def _run_once(view, request, args, kwargs, method, scope, key, fingerprint, redact):
    with transaction.atomic():
        existing = _claim(scope, key, fingerprint)
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise KeyReused()
            replay = Response(existing.response_body, status=existing.response_status)
            replay["Idempotent-Replayed"] = "true"
            return replay
        response = method(view, request, *args, **kwargs)
        if response.status_code >= 500:
            transaction.set_rollback(True)
            return response
        body = response.data
        if isinstance(body, dict) and redact:
            body = {name: value for name, value in body.items() if name not in redact}
        IdempotencyRecord.objects.filter(**scope, key=key).update(
            response_status=response.status_code, response_body=json.loads(json.dumps(body, default=str))
        )
        return response
