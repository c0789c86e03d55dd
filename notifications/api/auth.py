"""API keys for the apps that send: `Authorization: Bearer nk_<prefix>.<secret>`."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from notifications.models import ApiClient

KEY_PREFIX = ApiClient.KEY_PREFIX
LAST_USED_PRECISION = timedelta(minutes=1)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        scheme, _, key = header.partition(" ")
        if scheme != self.keyword or not key.startswith(KEY_PREFIX):
            return None
        client = ApiClient.for_key(key)
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        now = timezone.now()
        # A write per request would sit on the send path; a minute's precision is enough here.
        if client.last_used_at is None or now - client.last_used_at > LAST_USED_PRECISION:
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
        return client.owner, client

    def authenticate_header(self, request):
        return self.keyword


def api_client_of(request):
    return request.auth if isinstance(request.auth, ApiClient) else None


class CanSend(permissions.BasePermission):
    message = "Sending needs an API key with the 'send' scope, or a staff user."

    def has_permission(self, request, view):
        client = api_client_of(request)
        if client is not None:
            return client.has_scope("send")
        return bool(request.user and request.user.is_staff)
