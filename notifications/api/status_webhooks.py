"""Status webhooks of sending apps: an API client registers where the status changes of its
notifications go, lists its dead-lettered events and queues them again."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from channels_delivery.engine import status_events
from notifications.api.auth import api_client_of
from notifications.api.contacts import reachable_url
from notifications.api.errors import Conflict
from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from notifications.api.permissions import ClientScopes
from notifications.models import StatusEvent, StatusWebhook

EVENT_TYPES = [
    "delivery.queued", "delivery.sent", "delivery.delivered", "delivery.failed", "delivery.bounced",
    "delivery.undelivered", "delivery.skipped", "delivery.cancelled", "notification.read",
]


class StatusWebhookSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES), required=False,
                                        max_length=len(EVENT_TYPES), help_text="Empty or left out: every type.")

    class Meta:
        model = StatusWebhook
        fields = ["id", "url", "event_types", "active", "created_at", "deactivated_reason"]
        read_only_fields = ["id", "active", "created_at", "deactivated_reason"]

    def validate_url(self, url):
        return reachable_url(url)


class NewStatusWebhookSerializer(StatusWebhookSerializer):
    secret = serializers.CharField(
        required=False, help_text="The signing secret (Standard Webhooks), shown this once (not in replays)."
    )

    class Meta(StatusWebhookSerializer.Meta):
        fields = [*StatusWebhookSerializer.Meta.fields, "secret"]


class StatusEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = StatusEvent
        fields = ["id", "event_id", "webhook", "type", "notification_id", "delivery_id", "payload", "status",
                  "attempt_count", "last_error", "retry_policy", "created_at", "updated_at"]


class IsApiClient(permissions.BasePermission):
    message = "Status webhooks belong to API clients: call with an API key."

    def has_permission(self, request, view):
        return api_client_of(request) is not None


class StatusWebhookViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The calling API client's status webhooks (`read` scope to list, `send` to change)."""

    serializer_class = StatusWebhookSerializer
    permission_classes = [permissions.IsAuthenticated, IsApiClient, ClientScopes]

    def get_queryset(self):
        return StatusWebhook.objects.filter(client=api_client_of(self.request)).order_by("-created_at", "-id")

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER], responses={201: NewStatusWebhookSerializer})
    @idempotent(redact=("secret",))
    def create(self, request):
        serializer = StatusWebhookSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook = serializer.save(client=api_client_of(request))
        return Response(NewStatusWebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=StatusEventSerializer(many=True))
    @action(detail=False, methods=["get"], url_path="dead-letters")
    def dead_letters(self, request):
        """Events that ran out of tries (or were refused), newest first."""
        events = StatusEvent.objects.dead_letters().filter(webhook__in=self.get_queryset()).order_by("-id")
        page = self.paginate_queryset(events)
        serializer = StatusEventSerializer(page if page is not None else events, many=True)
        return self.get_paginated_response(serializer.data) if page is not None else Response(serializer.data)

    @extend_schema(request=None, responses={202: StatusEventSerializer})
    @action(detail=False, methods=["post"], url_path=r"dead-letters/(?P<event_pk>\d+)/redrive")
    def redrive(self, request, event_pk):
        """Queue a dead-lettered event again, with a fresh count of tries; 409 unless it failed."""
        event = get_object_or_404(StatusEvent, id=event_pk, webhook__in=self.get_queryset())
        if not status_events.redrive(event.id):
            raise Conflict(f"Event {event.id} is {event.status}, not failed.")
        event.refresh_from_db()
        return Response(StatusEventSerializer(event).data, status=status.HTTP_202_ACCEPTED)
