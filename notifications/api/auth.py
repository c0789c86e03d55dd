"""API keys for the apps that send: `Authorization: Bearer nk_<prefix>.<secret>`."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from notifications.api.throttling import note_failed_login, refuse_failed_logins
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
        refuse_failed_logins(request)
        client = ApiClient.for_key(key)
        if client is None:
            note_failed_login(request)
            raise exceptions.AuthenticationFailed("Invalid API key.")
        now = timezone.now()
        # A write per request would sit on the send path; a minute's precision is enough here.
        if client.last_used_at is None or now - client.last_used_at > LAST_USED_PRECISION:
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
            client.last_used_at = now  # the process cache holds this object: no write for a minute
        return client.owner, client

    def authenticate_header(self, request):
        return self.keyword


class UserTokenAuthentication(authentication.TokenAuthentication):
    """DRF's user tokens, with failed attempts counted per address (see api/throttling.py)."""

    def authenticate(self, request):
        scheme = authentication.get_authorization_header(request).split(b" ", 1)[0]
        if scheme.lower() != self.keyword.lower().encode():
            return None
        refuse_failed_logins(request)
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            note_failed_login(request)
            raise


def api_client_of(request):
    return request.auth if isinstance(request.auth, ApiClient) else None


class CanSend(permissions.BasePermission):
    message = "Sending needs an API key with the 'send' scope, or a staff user."

    def has_permission(self, request, view):
        client = api_client_of(request)
        if client is not None:
            return client.has_scope("send")
        return bool(request.user and request.user.is_staff)
