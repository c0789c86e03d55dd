"""Throttling per API client (or per user for end users), counted in Redis for every web process."""

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

from notifications.api.auth import api_client_of


class ClientRateThrottle(SimpleRateThrottle):
    scope = "client"

    def __init__(self):
        # The rate is chosen per request (client or user), so __init__ must not look it up.
        self.cache = caches["throttle"]

    def allow_request(self, request, view):
        user = getattr(request, "user", None)
        if not (user and user.is_authenticated):
            return True
        client = api_client_of(request)
        self.scope = "client" if client is not None else "user"
        self.rate = settings.NOTIFY_THROTTLE_RATES[self.scope]
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        client = api_client_of(request)
        ident = client.pk if client is not None else request.user.pk
        return f"{self.scope}:{ident}"
