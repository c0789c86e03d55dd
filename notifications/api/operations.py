"""Operator endpoints: the dead-letter list and re-driving a failed delivery."""

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

import channels_delivery
from channels_delivery.fallback import NotRedrivable

from ..auth import api_client_of
from ..models import Channel, Delivery
from ..ops import audit
from .permissions import IsOperator
from .serializers import DeliverySerializer


def operator_name(request):
    client = api_client_of(request)
    return f"api client {client.name}" if client is not None else f"staff {request.user.get_username()}"


class DeadLetterSerializer(DeliverySerializer):
    notification = serializers.UUIDField(source="notification_id", read_only=True)
    recipient = serializers.CharField(source="notification.recipient.username", read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    class Meta(DeliverySerializer.Meta):
        fields = ["notification", "recipient", "updated_at", *DeliverySerializer.Meta.fields]


class DeadLetterList(generics.ListAPIView):
    """Deliveries that exhausted their whole fallback chain, newest first."""

    serializer_class = DeadLetterSerializer
    permission_classes = [permissions.IsAuthenticated, IsOperator]

    @extend_schema(
        parameters=[
            OpenApiParameter("channel", OpenApiTypes.STR, enum=Channel.values),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Failed at or after (ISO 8601)."),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        queryset = (
            Delivery.objects.dead_letters()
            .select_related("notification__recipient")
            .prefetch_related("attempts")
            .order_by("-updated_at", "-id")
        )
        errors = {}
        channel = self.request.query_params.get("channel")
        if channel:
            if channel not in Channel.values:
                errors["channel"] = [f"Unknown channel '{channel[:50]}'."]
            queryset = queryset.filter(channel=channel)
        since = self.request.query_params.get("since")
        if since:
            try:
                moment = parse_datetime(since)
            except ValueError:
                moment = None
            if moment is None:
                errors["since"] = ["Expected an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z."]
            queryset = queryset.filter(updated_at__gte=moment) if moment else queryset
        if errors:
            raise ValidationError(errors)
        return queryset


class RedriveResultSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()


class Redrive(APIView):
    """Queue a failed delivery again; if it fails again, the rest of its chain runs after it."""

    permission_classes = [permissions.IsAuthenticated, IsOperator]

    @extend_schema(request=None, responses={202: RedriveResultSerializer})
    def post(self, request, delivery_id):
        try:
            delivery = channels_delivery.redrive(delivery_id, by=operator_name(request))
        except Delivery.DoesNotExist:
            raise NotFound("No such delivery.")
        except NotRedrivable as error:
            return Response(
                {"error": {"status": 409, "code": "conflict", "message": str(error)}}, status=status.HTTP_409_CONFLICT
            )
        audit.record_request(request, audit.Action.DELIVERY_REDRIVE, delivery, before={"status": "failed"},
                             after={"status": delivery.status})
        return Response({"id": str(delivery.id), "status": delivery.status}, status=status.HTTP_202_ACCEPTED)
