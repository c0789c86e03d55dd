"""One error shape for every API failure:
{"error": {"status": 400, "code": "invalid", "message": "...", "fields": {"title": ["..."]}}}

DRF's exceptions pass through exception_handler; Django's own 400/404/500 pages for /api/ paths
answer the same shape through the handlers at the end (installed in config/urls.py).
"""

import sys

from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


OVERLOAD_RETRY_AFTER = 2


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is not in a state that allows this."
    default_code = "conflict"


class Unprocessable(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request cannot be processed."
    default_code = "unprocessable"


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
    response = drf_exception_handler(exc, context)
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


def overloaded(request):
    """503 + Retry-After: Postgres had no connection for us in time (the web process's pool stayed
    exhausted for DATABASE_POOL_TIMEOUT, or the server refused one). Shedding load is the answer a
    client can act on; a 500 would say we are broken."""
    body = error_body(503, "overloaded", "The service is overloaded; retry after the indicated delay.")
    response = JsonResponse(body, status=503) if _is_api(request) else HttpResponse(body["error"]["message"], status=503)
    response["Retry-After"] = str(OVERLOAD_RETRY_AFTER)
    return response


def server_error(request):
    # Django calls this handler inside its `except` block, so the exception is still at hand.
    if isinstance(sys.exc_info()[1], OperationalError):
        return overloaded(request)
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse(error_body(500, "server_error", "Internal server error."), status=500)
