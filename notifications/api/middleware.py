"""Middleware of the API's edge: unauthenticated paths throttled per address."""

from django.conf import settings
from django.http import JsonResponse

from .errors import BACKING_SERVICE_ERRORS, error_body, unavailable_response
from .throttling import client_address, hit


class AddressThrottle:
    """Middleware: requests to the unauthenticated paths (NOTIFY_THROTTLE_ADDRESS_PATHS: path
    prefix -> rate scope) are counted per client address; over the rate they get a 429."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for prefix, scope in settings.NOTIFY_THROTTLE_ADDRESS_PATHS.items():
            rate = settings.NOTIFY_THROTTLE_RATES.get(scope)
            if rate and request.path.startswith(prefix):
                try:
                    allowed, wait = hit(f"{scope}:{client_address(request)}", rate)
                except BACKING_SERVICE_ERRORS as error:
                    return unavailable_response(error)
                if not allowed:
                    response = JsonResponse(
                        error_body(429, "throttled", "Too many requests from this address."), status=429
                    )
                    response["Retry-After"] = str(wait)
                    return response
                break
        return self.get_response(request)
