"""The caller's webhook endpoints: URL, method, content type and extra headers."""

import re

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from channels_delivery.engine.standard_webhooks import RESERVED_HEADERS
from notifications.api.contacts import OwnContactPoints, reachable_url
from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from notifications.models import WebhookEndpoint


HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$")  # an RFC 9110 token
MAX_EXTRA_HEADERS = 10


class WebhookEndpointSerializer(serializers.ModelSerializer):
    extra_headers = serializers.DictField(
        child=serializers.CharField(max_length=1000, trim_whitespace=False), required=False, write_only=True,
        help_text="Headers sent with every request (e.g. Authorization); stored as credentials, never shown again.",
    )
    extra_header_names = serializers.SerializerMethodField(help_text="The names of the extra headers, not their values.")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "method", "content_type", "extra_headers", "extra_header_names",
                  "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]

    def validate_url(self, url):
        return reachable_url(url)

    def validate_extra_headers(self, headers):
        if len(headers) > MAX_EXTRA_HEADERS:
            raise serializers.ValidationError(f"At most {MAX_EXTRA_HEADERS} headers.")
        for name, value in headers.items():
            if not HEADER_NAME.match(name):
                raise serializers.ValidationError(f"{name[:100]!r} is not a header name.")
            if name.lower() in RESERVED_HEADERS:
                raise serializers.ValidationError(f"{name} is set by the service (signature, framing, idempotency).")
            if any(char in value for char in "\r\n\0"):
                raise serializers.ValidationError(f"The value of {name} holds a line break.")
        return headers

    def get_extra_header_names(self, endpoint) -> list[str]:
        return sorted(endpoint.extra_headers or {})


class NewWebhookEndpointSerializer(WebhookEndpointSerializer):
    # Not readOnly/required in the schema: an idempotent replay answers without it.
    secret = serializers.CharField(required=False, help_text="The signing secret, shown this once (not in replays).")

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
        with transaction.atomic():
            self.refuse_beyond_cap("url")
            endpoint = serializer.save(user=request.user)
        return Response(NewWebhookEndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)


