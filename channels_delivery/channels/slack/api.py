"""The caller's Slack incoming webhooks, and where the Slack bot reaches them."""

import re

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from channels_delivery.channels.slack.providers import url_problem
from channels_delivery.channels.slack.models import SlackBotTarget, SlackWorkspace
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
        if problem := url_problem(url):
            raise serializers.ValidationError(problem)
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
        with transaction.atomic():
            self.refuse_beyond_cap("url")
            webhook = serializer.save(user=request.user)
        return Response(SlackWebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)


SLACK_ID_PATTERNS = {"direct": r"^[UW][A-Z0-9]{2,31}$", "channel": r"^[CG][A-Z0-9]{2,31}$"}


class SlackBotTargetSerializer(serializers.ModelSerializer):
    workspace = serializers.SlugRelatedField(slug_field="team_id", queryset=SlackWorkspace.objects.filter(active=True),
                                             help_text="The workspace's team id (T...).")

    class Meta:
        model = SlackBotTarget
        fields = ["id", "workspace", "kind", "target_id", "active", "created_at", "deactivated_reason"]
        read_only_fields = ["id", "active", "created_at", "deactivated_reason"]
        validators = []  # a known target is an upsert

    def validate(self, data):
        if not re.fullmatch(SLACK_ID_PATTERNS[data.get("kind", "direct")], data["target_id"]):
            what = "a Slack user id (U..., W...)" if data.get("kind", "direct") == "direct" else "a channel id (C..., G...)"
            raise serializers.ValidationError({"target_id": [f"Must be {what}."]})
        return data


class SlackBotTargetViewSet(OwnContactPoints):
    """Where the Slack bot reaches the caller: direct messages to their Slack user id, or posts in a
    channel, in a workspace our Slack app is installed in."""

    serializer_class = SlackBotTargetSerializer

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER], responses={201: SlackBotTargetSerializer,
                                                                 200: SlackBotTargetSerializer})
    @idempotent()
    def create(self, request):
        serializer = SlackBotTargetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        target, created = SlackBotTarget.objects.update_or_create(
            user=request.user, workspace=data["workspace"], kind=data.get("kind", "direct"),
            target_id=data["target_id"], defaults={"active": True, "deactivated_reason": ""},
        )
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(SlackBotTargetSerializer(target).data, status=answer)
