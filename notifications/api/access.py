"""Who may act as an operator: staff users, or an API key with the `admin` scope."""

from rest_framework import permissions

from ..auth import api_client_of


def is_operator(request):
    client = api_client_of(request)
    if client is not None:
        return client.has_scope("admin")
    return bool(request.user and request.user.is_staff)


class IsOperator(permissions.BasePermission):
    message = "Operators only (staff, or an API key with the 'admin' scope)."

    def has_permission(self, request, view):
        return is_operator(request)


class IsEndUser(permissions.BasePermission):
    message = "Use the user's own token; API keys manage preferences at /api/users/{username}/preferences/."

    def has_permission(self, request, view):
        return api_client_of(request) is None
