"""The caller's webhook endpoints."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from notifications.api.contacts import OwnContactPoints, reachable_url
from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from notifications.models import WebhookEndpoint


class WebhookEndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]

    def validate_url(self, url):
        return reachable_url(url)


class NewWebhookEndpointSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="The signing secret, shown this once.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookEndpointViewSet(OwnContactPoints):
    """The caller's webhook endpoints; each request we send is signed with the endpoint's secret."""

    serializer_class = WebhookEndpointSerializer

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER], responses={201: NewWebhookEndpointSerializer})
    @idempotent(redact=("secret",))
    def create(self, request):
        serializer = WebhookEndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = serializer.save(user=request.user)
        return Response(NewWebhookEndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)


