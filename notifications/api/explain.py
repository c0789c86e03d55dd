"""`GET /api/notifications/{id}/explain/`: why a notification went out the way it did.

Every channel considered and the decision taken at planning (with the rule that decided it),
quiet-hours deferrals, each delivery with its attempts and template version, and the fallback
hops between channels of a route. Visible to the recipient, the API client that sent it and
operators; to anyone else it does not exist (404).
"""

from itertools import pairwise

from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.auth import api_client_of
from notifications.api.permissions import ClientScopes, is_operator
from notifications.api.serializers import DeliverySerializer, public_reason
from notifications.models import Delivery, DeliveryGroups, DeliveryStatus, Notification


class ExplainedDeliverySerializer(DeliverySerializer):
    class Meta(DeliverySerializer.Meta):
        fields = DeliverySerializer.Meta.fields + ["route"]


class HopSerializer(serializers.Serializer):
    route = serializers.IntegerField()
    source = serializers.CharField(help_text="The channel that failed or was skipped.")
    target = serializers.CharField(help_text="The next channel of the route.")
    reason = serializers.CharField()


class ExplanationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    recipient = serializers.CharField()
    category = serializers.CharField()
    critical = serializers.BooleanField()
    status = serializers.CharField()
    priority = serializers.CharField()
    template_key = serializers.CharField()
    locale = serializers.CharField()
    scheduled_at = serializers.DateTimeField(allow_null=True)
    decisions = serializers.ListField(child=serializers.DictField(), help_text="The planning trace, in order.")
    deliveries = ExplainedDeliverySerializer(many=True)
    fallback_hops = HopSerializer(many=True)


def may_see(request, notification):
    client = api_client_of(request)
    if client is not None and notification.sender_id == client.id:
        return True
    if client is None and notification.recipient_id == request.user.pk:
        return True
    return is_operator(request)


GAVE_UP = DeliveryGroups.FALLBACK_TRIGGERS | {DeliveryStatus.SKIPPED}


def fallback_hops(deliveries):
    """A hop is a later channel of a route that ran because the one before it failed or was skipped."""
    hops = []
    by_route = {}
    for delivery in deliveries:
        by_route.setdefault(delivery.route, []).append(delivery)
    for route, chain in sorted(by_route.items()):
        chain.sort(key=lambda d: d.position)
        for previous, current in pairwise(chain):
            gave_up = previous.status in GAVE_UP
            if gave_up and current.status != DeliveryStatus.PENDING:
                reason = previous.reason or previous.last_error or previous.status
                hops.append({"route": route, "source": previous.channel, "target": current.channel, "reason": reason})
    return hops


class ExplainView(APIView):
    # An app's key needs the read scope: a trace shows the user's quiet hours and group names.
    permission_classes = [IsAuthenticated, ClientScopes]

    @extend_schema(responses=ExplanationSerializer)
    def get(self, request, pk):
        notification = (
            Notification.objects.select_related("recipient", "category")
            .prefetch_related(Prefetch("deliveries", queryset=Delivery.objects.prefetch_related("attempts")))
            .filter(pk=pk)
            .first()
        )
        if notification is None or not may_see(request, notification):
            raise Http404
        deliveries = list(notification.deliveries.all())
        explanation = {
            "id": notification.id,
            "recipient": notification.recipient.get_username(),
            "category": notification.category_id,
            "critical": notification.category.critical,
            "status": notification.status,
            "priority": notification.priority,
            "template_key": notification.template_key or notification.category_id,
            "locale": notification.locale,
            "scheduled_at": notification.scheduled_at,
            "decisions": notification.trace or [],
            "deliveries": deliveries,
            "fallback_hops": fallback_hops(deliveries),
        }
        hide = not is_operator(request)
        if hide:
            for hop in explanation["fallback_hops"]:
                hop["reason"] = public_reason(hop["reason"])
        return Response(ExplanationSerializer(explanation, context={"hide_provider_errors": hide}).data)
