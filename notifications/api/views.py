from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from .. import sending
from ..auth import CanSend, api_client_of
from ..models import Delivery, Notification
from .serializers import (
    NotificationDetailSerializer,
    NotificationSerializer,
    SendNotificationSerializer,
    SendResultSerializer,
)


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Notifications the caller may see: a user's own, or those an API client sent."""

    def get_queryset(self):
        queryset = Notification.objects.select_related("recipient")
        client = api_client_of(self.request)
        if client is not None:
            queryset = queryset.filter(sender=client)
        else:
            queryset = queryset.for_recipient(self.request.user)
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(
                Prefetch("deliveries", queryset=Delivery.objects.prefetch_related("attempts"))
            )
        return queryset.order_by("-created_at", "-id")

    def get_serializer_class(self):
        if self.action == "retrieve":
            return NotificationDetailSerializer
        if self.action == "create":
            return SendNotificationSerializer
        return NotificationSerializer

    def get_permissions(self):
        if self.action == "create":
            return [*super().get_permissions(), CanSend()]
        return super().get_permissions()

    @extend_schema(request=SendNotificationSerializer, responses={202: SendResultSerializer})
    def create(self, request):
        serializer = SendNotificationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        notifications = sending.store_and_dispatch(sender=api_client_of(request), **serializer.validated_data)
        return Response(
            {"ids": [str(n.id) for n in notifications], "status": "accepted"}, status=status.HTTP_202_ACCEPTED
        )
