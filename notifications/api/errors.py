"""One error shape for every API failure:
{"error": {"status": 400, "code": "invalid", "message": "...", "fields": {"title": ["..."]}}}

DRF's exceptions pass through exception_handler; Django's own 400/404/500 pages for /api/ paths
answer the same shape through the handlers at the end (installed in config/urls.py).
"""

import logging
import sys

import redis
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DataError
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import JsonResponse
from kombu.exceptions import OperationalError as BrokerOperationalError
from django.views import defaults
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler




class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is not in a state that allows this."
    default_code = "conflict"


class Unprocessable(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request cannot be processed."
    default_code = "unprocessable"


class ServiceUnavailable(APIException):
    """Postgres, Redis or the broker cannot be reached: nothing was accepted, try again later."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A backing service is unavailable; nothing was accepted. Try again shortly."
    default_code = "unavailable"


logger = logging.getLogger(__name__)

# What a request meets when Postgres, Redis or the broker is down or restarting.
BACKING_SERVICE_ERRORS = (
    DatabaseOperationalError, DatabaseInterfaceError, redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError, BrokerOperationalError, ConnectionError,
)


def unavailable_response(exc):
    logger.warning("answering 503: backing service unavailable (%s)", type(exc).__name__)
    response = JsonResponse(
        error_body(503, ServiceUnavailable.default_code, str(ServiceUnavailable.default_detail)), status=503
    )
    response["Retry-After"] = str(settings.NOTIFY_UNAVAILABLE_RETRY_AFTER)
    return response


class BackingServiceErrors:
    """Middleware: outside DRF's views too (unsubscribe, callbacks, health), an unreachable
    backing service is a 503 with Retry-After in the one error format, never a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, BACKING_SERVICE_ERRORS):
            return unavailable_response(exception)
        return None


def error_body(status_code, code, message, fields=None):
    error = {"status": status_code, "code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return {"error": error}


def _first_code(codes):
    if isinstance(codes, dict):
        for value in codes.values():
            return _first_code(value)
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    return codes if isinstance(codes, str) else "error"


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body(413, "too_large", "Request body is too large."), status=413)
    if isinstance(exc, BACKING_SERVICE_ERRORS):
        exc = ServiceUnavailable()
    if isinstance(exc, DataError):
        # Postgres refused a value as data (a NUL byte, a number out of range) that a field let
        # through: the caller's input, so a 400, and the transaction is rolled back.
        exc = serializers.ValidationError({"non_field_errors": ["A value cannot be stored (e.g. a NUL character)."]})
    response = drf_exception_handler(exc, context)
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(settings.NOTIFY_UNAVAILABLE_RETRY_AFTER)
    if response is None:
        return None
    detail = response.data
    code = _first_code(getattr(exc, "get_codes", lambda: "error")())
    if isinstance(detail, dict) and set(detail) != {"detail"}:
        response.data = error_body(response.status_code, code, "Invalid input.", detail)
    elif isinstance(detail, list):
        response.data = error_body(response.status_code, code, "Invalid input.", {"non_field_errors": detail})
    else:
        message = str(detail.get("detail", detail)) if isinstance(detail, dict) else str(detail)
        response.data = error_body(response.status_code, code, message)
    return response


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False, help_text="Field name -> list of messages (or nested errors).")


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API (used by the OpenAPI schema)."""

    error = ErrorDetailSerializer()


def _is_api(request):
    return request.path.startswith("/api/")


def bad_request(request, exception):
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body(413, "too_large", "Request body is too large."), status=413)
    return JsonResponse(error_body(400, "bad_request", "Bad request."), status=400)


def not_found(request, exception):
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(error_body(404, "not_found", "Not found."), status=404)


def server_error(request):
    # Django calls this handler inside its `except` block, so the exception is still at hand.
    # Outside DRF and the middleware (e.g. no pooled Postgres connection in time for a middleware
    # query): shedding load with a 503 the client can act on, never a 500.
    if isinstance(sys.exc_info()[1], BACKING_SERVICE_ERRORS):
        return unavailable_response(sys.exc_info()[1])
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse(error_body(500, "server_error", "Internal server error."), status=500)
