from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from notifications import lifecycle
from notifications.api.auth import CanSend, api_client_of
from notifications.api import quotas
from notifications.api.errors import Conflict, ErrorSerializer
from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from notifications.api.inbox import InboxActions, InboxFilterSerializer, filter_inbox
from notifications.api.permissions import ClientScopes, is_operator
from notifications.api.serializers import (
    NotificationDetailSerializer,
    NotificationSerializer,
    SendNotificationSerializer,
    SendResultSerializer,
)
from notifications.api.staff import OperatorActions
from notifications.models import Delivery, Notification
from notifications.ops import audit
from notifications.planning import audiences, sending

# Actions where staff reach any notification; everywhere else a user sees only their own.
OPERATOR_ACTIONS = {"retrieve", "cancel", "resend"}


class NotificationViewSet(
    InboxActions, OperatorActions, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Notifications the caller may see: a user's own, or those an API client sent."""

    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        queryset = Notification.objects.select_related("recipient").prefetch_related("broadcast")
        client = api_client_of(self.request)
        if client is not None:
            queryset = queryset.filter(sender=client)
        elif not (self.request.user.is_staff and self.action in OPERATOR_ACTIONS):
            queryset = queryset.for_recipient(self.request.user)
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(
                Prefetch("deliveries", queryset=Delivery.objects.prefetch_related("attempts"))
            )
        if self.action == "list":
            return filter_inbox(queryset, self.request.query_params)
        return queryset.order_by("-created_at", "-id")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "hide_provider_errors": not is_operator(self.request)}

    def get_serializer_class(self):
        if self.action == "retrieve":
            return NotificationDetailSerializer
        if self.action == "create":
            return SendNotificationSerializer
        return NotificationSerializer

    def get_permissions(self):
        if self.action == "create":
            return [*super().get_permissions(), CanSend()]
        return [*super().get_permissions(), ClientScopes()]

    @extend_schema(parameters=[InboxFilterSerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=SendNotificationSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: SendResultSerializer},
        description="Send to `recipients` at once, or to an audience (`to`) fanned out in the background: "
        "follow it at /api/broadcasts/{broadcast_id}/.",
    )
    @idempotent()
    def create(self, request):
        serializer = SendNotificationSerializer.reused(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        sender = api_client_of(request)
        if sender is not None:
            count = len(fields["recipients"]) if "recipients" in fields else audiences.audience_size(fields["to"], sender)
            quotas.take_recipients(sender, count)
        if "to" in fields:
            broadcast = audiences.start_broadcast(sender=sender, **fields)
            body = {"ids": [], "broadcast_id": str(broadcast.id), "status": "accepted"}
        else:
            notifications = sending.store_and_dispatch(sender=sender, **fields)
            body = {"ids": [str(n.id) for n in notifications], "broadcast_id": None, "status": "accepted"}
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        responses={200: NotificationSerializer, 409: OpenApiResponse(ErrorSerializer, description="Already sent.")},
        description="Cancel a notification that has not gone out yet, with its waiting deliveries. "
        "The sender's API key (send scope) or staff.",
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, CanSend])
    def cancel(self, request, pk=None):
        notification = self.get_object()
        before = {"status": notification.status}
        try:
            notification = lifecycle.cancel(notification.id)
        except lifecycle.NotAllowed as refusal:
            raise Conflict(str(refusal)) from refusal
        audit.record_request(request, audit.Action.NOTIFICATION_CANCEL, notification, before=before,
                             after={"status": notification.status})
        return Response(NotificationSerializer(notification).data)
