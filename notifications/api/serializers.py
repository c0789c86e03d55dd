from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Category, Channel, Delivery, DeliveryAttempt, Notification, Priority
from ..templating import LOCALE, validate_send

User = get_user_model()

MAX_RECIPIENTS_PER_REQUEST = 1000


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": Channel.values},
            {"type": "array", "items": {"type": "string", "enum": Channel.values}, "minItems": 1},
        ]
    }
)
class RouteField(serializers.Field):
    """A channel name (a route of its own) or a list of channels (a fallback chain, tried in order)."""

    default_error_messages = {
        "invalid": "Expected a channel name or a list of channel names.",
        "unknown": "Unknown channel '{channel}'.",
        "empty": "A fallback chain needs at least one channel.",
    }

    def to_internal_value(self, data):
        chain = [data] if isinstance(data, str) else data
        if not isinstance(chain, list) or not all(isinstance(item, str) for item in chain):
            self.fail("invalid")
        if not chain:
            self.fail("empty")
        for channel in chain:
            if channel not in Channel.values:
                self.fail("unknown", channel=channel[:50])
        return chain

    def to_representation(self, value):
        return value


class SendNotificationSerializer(serializers.Serializer):
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=150),
        min_length=1,
        max_length=MAX_RECIPIENTS_PER_REQUEST,
        help_text="Recipient user ids (usernames).",
    )
    category = serializers.SlugField(max_length=64)
    title = serializers.CharField(max_length=500, required=False, help_text="Optional when a template applies.")
    message = serializers.CharField(max_length=20000, allow_blank=True, required=False, default="")
    channels = serializers.ListField(
        child=RouteField(),
        required=False,
        allow_empty=False,
        help_text='Routes run side by side; a list inside is a fallback chain: ["inapp", ["push", "sms", "email"]].',
    )
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.MEDIUM)
    data = serializers.DictField(required=False, default=dict)
    # --- prefs: templates ---
    template = serializers.SlugField(
        max_length=100, required=False, source="template_key", help_text="Template key; default: the category's."
    )
    context = serializers.DictField(required=False, default=dict, help_text="Values of the template's variables.")
    locale = serializers.RegexField(LOCALE, max_length=16, required=False, default="")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if errors := validate_send(attrs):
            raise serializers.ValidationError(errors)
        return attrs

    def validate_recipients(self, usernames):
        usernames = list(dict.fromkeys(usernames))
        users = {user.username: user for user in User.objects.filter(username__in=usernames, is_active=True)}
        unknown = [name for name in usernames if name not in users]
        if unknown:
            raise serializers.ValidationError(f"Unknown recipients: {', '.join(unknown[:20])}")
        return [users[name] for name in usernames]

    def validate_category(self, key):
        category = Category.objects.filter(key=key).first()
        if category is None:
            raise serializers.ValidationError(f"Unknown category '{key}'.")
        return category

    def validate_channels(self, routes):
        """A channel is used once per notification: later repeats are dropped, as are emptied routes."""
        seen, unique_routes = set(), []
        for chain in routes:
            chain = [channel for channel in dict.fromkeys(chain) if channel not in seen]
            seen.update(chain)
            if chain:
                unique_routes.append(chain)
        return unique_routes


class SendResultSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.UUIDField())
    status = serializers.CharField()


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "provider", "started_at", "duration_ms", "outcome", "error", "provider_status_code", "note"]


class DeliverySerializer(serializers.ModelSerializer):
    attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id", "channel", "provider", "status", "route", "position", "attempt_count", "next_retry_at",
            "provider_message_id", "reason", "last_error", "template_version", "created_at",
            "sent_at", "delivered_at", "attempts",
        ]


class NotificationSerializer(serializers.ModelSerializer):
    recipient = serializers.CharField(source="recipient.username", read_only=True)
    category = serializers.CharField(source="category_id", read_only=True)
    message = serializers.CharField(source="body", read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id", "recipient", "category", "title", "message", "data", "priority", "status", "channels", "routes",
            "template_key", "locale", "scheduled_at", "expires_at", "created_at", "read_at", "seen_at",
            "archived_at",
        ]


class NotificationDetailSerializer(NotificationSerializer):
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta(NotificationSerializer.Meta):
        fields = NotificationSerializer.Meta.fields + ["deliveries"]
