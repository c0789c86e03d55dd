"""Operator endpoints: resend, the deliveries list, and the analytics summary."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import lifecycle
from notifications.api.auth import api_client_of
from notifications.api.errors import Conflict, ErrorSerializer
from notifications.api.filters import StrictQuery
from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from notifications.api.permissions import IsOperator
from notifications.api.serializers import DeliverySerializer
from notifications.models import Channel, Delivery, DeliveryStatus
from notifications.ops import audit
from notifications.ops.dashboard import delivery_summary


class ResendSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ResendResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The resend record.")
    reason = serializers.CharField()
    channels = serializers.ListField(child=serializers.CharField(), help_text="Channels planned again.")
    queued = serializers.ListField(child=serializers.UUIDField(), help_text="Deliveries queued now.")


class OperatorActions:
    """Mixed into NotificationViewSet."""

    @extend_schema(
        request=ResendSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            202: ResendResultSerializer,
            409: OpenApiResponse(ErrorSerializer, description="Nothing failed or skipped to resend."),
        },
        description="Plan the notification's failed and skipped channels again as new attempts (staff).",
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, IsOperator])
    @idempotent()
    def resend(self, request, pk=None):
        notification = self.get_object()
        body = ResendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        client = api_client_of(request)
        try:
            record, queued = lifecycle.resend(
                notification.id,
                reason=body.validated_data["reason"],
                requested_by=None if client else request.user,
                client=client,
            )
        except lifecycle.NotAllowed as refusal:
            raise Conflict(str(refusal)) from refusal
        audit.record_request(request, audit.Action.NOTIFICATION_RESEND, notification, reason=record.reason,
                             after={"channels": record.channels, "queued": [str(d.id) for d in queued]})
        result = {"id": record.id, "reason": record.reason, "channels": record.channels,
                  "queued": [str(d.id) for d in queued]}
        return Response(result, status=status.HTTP_202_ACCEPTED)


class DeliveryFilterSerializer(StrictQuery):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    provider = serializers.CharField(max_length=32, required=False)
    since = serializers.DateTimeField(required=False, help_text="Created at or after this.")
    notification = serializers.UUIDField(required=False)


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every delivery, newest first, for operators."""

    serializer_class = DeliverySerializer
    permission_classes = [IsAuthenticated, IsOperator]
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        queryset = Delivery.objects.prefetch_related("attempts").order_by("-created_at", "-id")
        if self.action != "list":
            return queryset
        filters = DeliveryFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        for name in ("status", "channel", "provider"):
            if name in wanted:
                queryset = queryset.filter(**{name: wanted[name]})
        if "since" in wanted:
            queryset = queryset.filter(created_at__gte=wanted["since"])
        if "notification" in wanted:
            queryset = queryset.filter(notification_id=wanted["notification"])
        return queryset

    @extend_schema(parameters=[DeliveryFilterSerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class SummaryWindowSerializer(StrictQuery):
    since = serializers.DateTimeField(required=False, help_text="Default: 24 hours before until.")
    until = serializers.DateTimeField(required=False, help_text="Default: now.")

    def validate(self, window):
        until = window.get("until") or timezone.now()
        since = window.get("since") or until - timedelta(hours=24)
        if since >= until:
            raise serializers.ValidationError({"since": ["Must be before until."]})
        return {"since": since, "until": until}


class ChannelSummarySerializer(serializers.Serializer):
    channel = serializers.CharField()
    provider = serializers.CharField()
    total = serializers.IntegerField()
    sent = serializers.IntegerField(help_text="Left the building (sent_at set).")
    delivered = serializers.IntegerField(help_text="Confirmed by the provider.")
    failed = serializers.IntegerField(help_text="Failed, bounced or undelivered.")
    success_rate = serializers.FloatField(allow_null=True, help_text="Sent or delivered, over those plus failed (null when none decided).")
    latency_ms = inline_serializer(
        "LatencyPercentiles",
        {"p50": serializers.FloatField(allow_null=True), "p95": serializers.FloatField(allow_null=True),
         "p99": serializers.FloatField(allow_null=True)},
        help_text="Notification created -> delivery sent.",
    )


class SummarySerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    channels = ChannelSummarySerializer(many=True)


class AnalyticsSummaryView(APIView):
    permission_classes = [IsAuthenticated, IsOperator]

    @extend_schema(parameters=[SummaryWindowSerializer], responses={200: SummarySerializer})
    def get(self, request):
        window = SummaryWindowSerializer(data=request.query_params)
        window.is_valid(raise_exception=True)
        since, until = window.validated_data["since"], window.validated_data["until"]
        return Response({"since": since, "until": until, "channels": delivery_summary(since, until)})
