"""Who may call what: the one place the API's permission rules live."""

from django.contrib.auth import get_user_model
from rest_framework import permissions

from notifications.tenancy import managed_users
from notifications.api.auth import api_client_of


def is_operator(request):
    """Operators: staff users, or API clients holding the `admin` scope."""
    client = api_client_of(request)
    if client is not None:
        return client.has_scope("admin")
    return bool(request.user and request.user.is_staff)


class IsOperator(permissions.BasePermission):
    message = "Operators only: a staff user, or an API key with the 'admin' scope."

    def has_permission(self, request, view):
        return is_operator(request)


class IsEndUser(permissions.BasePermission):
    """The caller acts as themselves (token or session), not as an app's API key."""

    message = "Only the user themselves may do this (use the user's token, not an API key)."

    def has_permission(self, request, view):
        return api_client_of(request) is None


class CanManageRecipients(permissions.BasePermission):
    """API keys read recipients with the `read` scope and write them with `send`; users must be staff."""

    message = "Needs an API key with the 'read' scope to read or 'send' to write, or a staff user."

    def has_permission(self, request, view):
        client = api_client_of(request)
        if client is not None:
            return client.has_scope("read" if request.method in permissions.SAFE_METHODS else "send")
        return bool(request.user and request.user.is_staff)


class ClientScopes(permissions.BasePermission):
    """An API key reads with the `read` scope and writes with `send`; users are judged elsewhere."""

    message = "This API key lacks the scope for this ('read' to read, 'send' to write)."

    def has_permission(self, request, view):
        client = api_client_of(request)
        if client is None:
            return True
        return client.has_scope("read" if request.method in permissions.SAFE_METHODS else "send")


class ManagesApiClients(permissions.BasePermission):
    """Issuing or revoking API keys needs the Django permission on ApiClient (add / change), held
    by the acting user (for an admin-scope key: its owner): being staff is not enough."""

    message = "Managing API clients needs the 'notifications.add_apiclient' / 'change_apiclient' permission."

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        needed = "notifications.add_apiclient" if view.action == "create" else "notifications.change_apiclient"
        return bool(request.user and request.user.is_active and request.user.has_perm(needed))
def recipients_of(client):
    """The users an API client may manage: onboard, read, send to and mint end-user tokens for:
    the ones its tenant created or was granted (notifications/tenancy.py). Operators' accounts are
    never among them."""
    users = get_user_model().objects.filter(is_active=True, is_staff=False, is_superuser=False)
    return managed_users(client, users)
