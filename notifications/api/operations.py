"""Operator endpoints: the dead-letter list and re-driving a failed delivery."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_delivery.engine.fallback import NotRedrivable, redrive
from notifications.api.auth import api_client_of
from notifications.api.errors import Conflict, ErrorSerializer
from notifications.api.filters import StrictQuery
from notifications.api.permissions import IsOperator
from notifications.api.serializers import DeliverySerializer
from notifications.models import Channel, Delivery
from notifications.ops import audit


def operator_name(request):
    client = api_client_of(request)
    return f"api client {client.name}" if client is not None else f"staff {request.user.get_username()}"


class DeadLetterSerializer(DeliverySerializer):
    notification = serializers.UUIDField(source="notification_id", read_only=True)
    recipient = serializers.CharField(source="notification.recipient.username", read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    class Meta(DeliverySerializer.Meta):
        fields = ["notification", "recipient", "updated_at", *DeliverySerializer.Meta.fields]


class DeadLetterFilterSerializer(StrictQuery):
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="Failed at or after (ISO 8601).")


class DeadLetterList(generics.ListAPIView):
    """Deliveries that exhausted their whole fallback chain, newest first."""

    serializer_class = DeadLetterSerializer
    permission_classes = [permissions.IsAuthenticated, IsOperator]

    @extend_schema(parameters=[DeadLetterFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        queryset = (
            Delivery.objects.dead_letters()
            .select_related("notification__recipient")
            .prefetch_related("attempts")
            .order_by("-updated_at", "-id")
        )
        filters = DeadLetterFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        if "channel" in wanted:
            queryset = queryset.filter(channel=wanted["channel"])
        if "since" in wanted:
            # DRF's DateTimeField answers in UTC: an offset Python accepts and Postgres does not
            # (beyond +-15:59) never reaches the database.
            queryset = queryset.filter(updated_at__gte=wanted["since"])
        return queryset


class RedriveResultSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()


class Redrive(APIView):
    """Queue a failed delivery again; if it fails again, the rest of its chain runs after it."""

    permission_classes = [permissions.IsAuthenticated, IsOperator]

    @extend_schema(request=None, responses={
        202: RedriveResultSerializer,
        409: OpenApiResponse(ErrorSerializer, description="The delivery is not failed (nothing to re-drive)."),
    })
    def post(self, request, delivery_id):
        try:
            delivery = redrive(delivery_id, by=operator_name(request))
        except Delivery.DoesNotExist:
            raise NotFound("No such delivery.")
        except NotRedrivable as error:
            raise Conflict(str(error)) from error
        audit.record_request(request, audit.Action.DELIVERY_REDRIVE, delivery, before={"status": "failed"},
                             after={"status": delivery.status})
        return Response({"id": str(delivery.id), "status": delivery.status}, status=status.HTTP_202_ACCEPTED)
