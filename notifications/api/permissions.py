"""Who may call what: the one place the API's permission rules live."""

from rest_framework import permissions

from notifications.api.auth import CanSend, api_client_of


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


class CanManageRecipients(CanSend):
    message = "Needs an API key with the 'send' scope, or a staff user."


class ClientScopes(permissions.BasePermission):
    """An API key reads with the `read` scope and writes with `send`; users are judged elsewhere."""

    message = "This API key lacks the scope for this ('read' to read, 'send' to write)."

    def has_permission(self, request, view):
        client = api_client_of(request)
        if client is None:
            return True
        return client.has_scope("read" if request.method in permissions.SAFE_METHODS else "send")
