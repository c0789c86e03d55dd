"""The caller's Slack incoming webhooks."""


from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from channels_delivery.channels.slack.providers import slack_host
from notifications.api.contacts import OwnContactPoints
from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from notifications.models import SlackWebhook


class SlackWebhookSerializer(serializers.ModelSerializer):
    url = serializers.URLField(max_length=500, write_only=True, help_text="The Slack incoming-webhook URL.")
    url_hint = serializers.SerializerMethodField(help_text="The URL's host and last characters (it is a secret).")

    class Meta:
        model = SlackWebhook
        fields = ["id", "url", "url_hint", "channel_name", "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]

    def validate_url(self, url):
        if slack_host(url) is None:
            allowed = ", ".join(settings.SLACK_WEBHOOK_HOSTS)
            raise serializers.ValidationError(f"Not a Slack webhook host (allowed: {allowed}).")
        return url

    def get_url_hint(self, webhook) -> str:
        host = webhook.url.split("/")[2] if webhook.url.count("/") >= 2 else ""
        return f"{host}/…{webhook.url[-4:]}"


class SlackWebhookViewSet(OwnContactPoints):
    """The caller's Slack incoming webhooks."""

    serializer_class = SlackWebhookSerializer

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER], responses={201: SlackWebhookSerializer})
    @idempotent()
    def create(self, request):
        serializer = SlackWebhookSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook = serializer.save(user=request.user)
        return Response(SlackWebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)


