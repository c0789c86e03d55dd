"""One error shape for every API failure:
{"error": {"status": 400, "code": "invalid", "message": "...", "fields": {"title": ["..."]}}}"""

from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _first_code(codes):
    if isinstance(codes, dict):
        for value in codes.values():
            return _first_code(value)
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    return codes if isinstance(codes, str) else "error"


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"error": {"status": 413, "code": "too_large", "message": "Request body is too large."}},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    error = {"status": response.status_code, "code": _first_code(getattr(exc, "get_codes", lambda: "error")())}
    if isinstance(detail, dict) and set(detail) != {"detail"}:
        error["message"] = "Invalid input."
        error["fields"] = detail
    elif isinstance(detail, list):
        error["message"] = "Invalid input."
        error["fields"] = {"non_field_errors": detail}
    else:
        error["message"] = str(detail.get("detail", detail)) if isinstance(detail, dict) else str(detail)
    response.data = {"error": error}
    return response
