import json
import base64
import binascii
import threading

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from notifications.api.auth import api_client_of
from notifications.api.contacts import reachable_url
from notifications.models import Broadcast, Channel, Delivery, DeliveryAttempt, Notification, Priority, Topic, categories
from notifications.planning.templating import LOCALE, validate_send
from notifications.tenancy import reachable_by_username

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


def existing_users(usernames, client):
    """The named active users the client may reach. Another tenant's user is reported exactly like
    one that does not exist, so an error names only what the caller itself sent."""
    usernames = list(dict.fromkeys(usernames))
    users = reachable_by_username(client, usernames)
    unknown = [name for name in usernames if name not in users]
    if unknown:
        raise serializers.ValidationError(f"Unknown recipients: {', '.join(unknown[:20])}")
    return [users[name] for name in usernames]


def client_in(serializer):
    request = serializer.context.get("request")
    return api_client_of(request) if request is not None else None


def existing_keys(queryset, field, values, what):
    values = list(dict.fromkeys(values))
    found = set(queryset.filter(**{f"{field}__in": values}).values_list(field, flat=True))
    unknown = [value for value in values if value not in found]
    if unknown:
        raise serializers.ValidationError(f"Unknown {what}: {', '.join(unknown[:20])}")
    return values


def json_depth(value, limit):
    """True when value nests no deeper than `limit` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def capped_json(value, limit, what):
    """A send's free-form JSON is copied into every recipient's notification and every delivery:
    it is bounded in size (NOTIFY_MAX_DATA_BYTES / NOTIFY_MAX_CONTEXT_BYTES) and depth."""
    if not json_depth(value, settings.NOTIFY_MAX_JSON_DEPTH):
        raise serializers.ValidationError(f"{what} nests deeper than {settings.NOTIFY_MAX_JSON_DEPTH} levels.")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise serializers.ValidationError(f"{what} is {size} bytes as JSON; at most {limit} are allowed.")
    return value


class AudienceSerializer(serializers.Serializer):
    """Who a broadcast reaches: the union of users, group members and topic subscribers, or all."""

    users = serializers.ListField(
        child=serializers.CharField(max_length=150), required=False, max_length=MAX_RECIPIENTS_PER_REQUEST,
        help_text="User ids (usernames).",
    )
    groups = serializers.ListField(
        child=serializers.CharField(max_length=150), required=False, max_length=100, help_text="Group (role) names."
    )
    topics = serializers.ListField(
        child=serializers.SlugField(max_length=100), required=False, max_length=100, help_text="Topic keys."
    )
    all = serializers.BooleanField(required=False, default=False, help_text="Every active user.")

    def validate_users(self, usernames):
        return [user.pk for user in existing_users(usernames, client_in(self))]

    def validate_groups(self, names):
        return existing_keys(Group.objects, "name", names, "groups")

    def validate_topics(self, keys):
        return existing_keys(Topic.objects, "key", keys, "topics")

    def validate(self, audience):
        if not (audience.get("all") or audience.get("users") or audience.get("groups") or audience.get("topics")):
            raise serializers.ValidationError("Name users, groups or topics, or set all to true.")
        return {
            "user_ids": audience.get("users", []),
            "groups": audience.get("groups", []),
            "topics": audience.get("topics", []),
            "all": audience.get("all", False),
        }


class AttachmentSerializer(serializers.Serializer):
    filename = serializers.RegexField(r"^[^/\\\x00-\x1f]{1,255}$", max_length=255,
                                      error_messages={"invalid": "A file name without slashes or control characters."})
    content_type = serializers.RegexField(r"^[\w.+-]+/[\w.+-]+$", max_length=127, default="application/octet-stream",
                                          error_messages={"invalid": "A media type such as application/pdf."})
    content = serializers.CharField(help_text="The file, base64. Give this or `url`.", trim_whitespace=True,
                                    required=False)
    url = serializers.URLField(max_length=1000, required=False,
                               help_text="Fetched when the notification is planned, within the same caps.")

    def validate_content(self, value):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as error:
            raise serializers.ValidationError("Not base64.") from error

    def validate_url(self, url):
        return reachable_url(url)

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if ("content" in values) == ("url" in values):
            raise serializers.ValidationError({"content": ["Give either content or url."]})
        return (values["filename"], values["content_type"], values.get("content"), values.get("url"))


class ReusedPerThread:
    """A serializer on the hottest path, built once per thread and re-armed for each request
    (`reused`). DRF builds a new instance's fields by deep-copying every declared one (22 for a
    send, the nested ones included), which cost 0.4 ms of every send, about what validating it
    costs. Re-armed means the request's data and context, and the previous results forgotten:
    is_valid(), errors and validated_data work them out again. One request at a time per thread,
    so threads never share an instance."""

    _per_thread = threading.local()

    @classmethod
    def reused(cls, data, context):
        instances = cls._per_thread.__dict__
        serializer = instances.get(cls)
        if serializer is None:
            serializer = instances[cls] = cls(data=data, context=context)
            return serializer
        serializer.initial_data, serializer._context = data, context
        for result in ("_validated_data", "_errors", "_data"):
            serializer.__dict__.pop(result, None)
        return serializer


class SendNotificationSerializer(ReusedPerThread, serializers.Serializer):
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=150),
        min_length=1,
        max_length=MAX_RECIPIENTS_PER_REQUEST,
        required=False,
        help_text="Recipient user ids (usernames), sent at once. Give this or `to`.",
    )
    to = AudienceSerializer(
        required=False, help_text="An audience fanned out in the background; answers with a broadcast id."
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
    # Templates
    template = serializers.SlugField(
        max_length=100, required=False, source="template_key", help_text="Template key; default: the category's."
    )
    context = serializers.DictField(required=False, default=dict, help_text="Values of the template's variables.")
    locale = serializers.RegexField(LOCALE, max_length=16, required=False, default="")
    # Timing
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    # --- channels: email attachments (stored once, sent by every email of the send) ---
    attachments = AttachmentSerializer(many=True, required=False, help_text="Files for the email channel.")

    def validate_attachments(self, files):
        if len(files) > settings.NOTIFY_ATTACHMENTS_MAX_COUNT:
            raise serializers.ValidationError(f"At most {settings.NOTIFY_ATTACHMENTS_MAX_COUNT} attachments.")
        total = sum(len(content or b"") for _name, _type, content, _url in files)
        if total > settings.NOTIFY_ATTACHMENTS_MAX_BYTES:
            raise serializers.ValidationError(
                f"Attachments total {total} bytes, over the {settings.NOTIFY_ATTACHMENTS_MAX_BYTES} allowed.")
        return files

    def validate_recipients(self, usernames):
        return existing_users(usernames, client_in(self))

    def validate_data(self, data):
        return capped_json(data, settings.NOTIFY_MAX_DATA_BYTES, "data")

    def validate_context(self, context):
        return capped_json(context, settings.NOTIFY_MAX_CONTEXT_BYTES, "context")

    def validate_category(self, key):
        category = categories().get(key)
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

    def validate_scheduled_at(self, when):
        if when is not None and when < timezone.now():
            raise serializers.ValidationError("Must not be in the past.")
        return when

    def validate(self, attrs):
        if ("recipients" in attrs) == ("to" in attrs):
            raise serializers.ValidationError({"recipients": ["Give either recipients or to (not both)."]})
        check_send_scopes(client_in(self), attrs)
        if attrs.get("attachments") and "to" in attrs:
            raise serializers.ValidationError({"attachments": ["Attachments go with recipients, not with an audience."]})
        expires_at = attrs.get("expires_at")
        if expires_at is not None:
            if expires_at <= (attrs.get("scheduled_at") or timezone.now()):
                raise serializers.ValidationError({"expires_at": ["Must be after scheduled_at and in the future."]})
        if errors := validate_send(attrs):
            raise serializers.ValidationError(errors)
        return attrs


def check_send_scopes(client, attrs):
    """Reaching everyone or whole groups, and categories that override every opt-out and quiet
    hours, each need their own scope (operators hold them all)."""
    if client is None:
        return
    audience = attrs.get("to") or {}
    if (audience.get("all") or audience.get("groups")) and not client.has_scope("broadcast"):
        raise PermissionDenied("Sending to all users or to groups needs an API key with the 'broadcast' scope.")
    if attrs["category"].critical and not client.has_scope("critical"):
        raise PermissionDenied(
            f"The category '{attrs['category'].key}' is critical (it ignores opt-outs and quiet hours): "
            "sending it needs an API key with the 'critical' scope."
        )


class SendResultSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.UUIDField(), help_text="Notifications created (direct sends).")
    broadcast_id = serializers.UUIDField(allow_null=True, help_text="Set when an audience (`to`) fans out.")
    status = serializers.CharField()


class BroadcastSerializer(serializers.ModelSerializer):
    audience = serializers.SerializerMethodField(help_text="Who it reaches: user ids (usernames), groups, topics, all.")
    total = serializers.IntegerField(source="total_recipients", read_only=True)
    created = serializers.IntegerField(source="notifications_created", read_only=True)
    chunks_total = serializers.IntegerField(read_only=True)
    chunks_done = serializers.IntegerField(read_only=True)

    class Meta:
        model = Broadcast
        fields = [
            "id", "status", "audience", "total", "created", "chunks_total", "chunks_done", "created_at", "finished_at"
        ]

    def get_audience(self, broadcast) -> dict:
        # Stored with internal primary keys; answered with the user ids (usernames) the app sent.
        audience = dict(broadcast.audience)
        user_ids = audience.pop("user_ids", [])
        usernames = User.objects.filter(pk__in=user_ids).order_by("username").values_list("username", flat=True)
        return {"users": list(usernames), **audience}


def public_reason(reason):
    """A failure reason without the provider's own words (they may hold account ids, numbers or
    URLs): our prefix ("retries exhausted (4 attempts)", "fallback from email") is kept."""
    return reason.split(": ", 1)[0] if ": " in reason else reason


def hides_provider_errors(serializer):
    """Apps and end users see that a provider failed, not its raw error text (operators do)."""
    return serializer.context.get("hide_provider_errors", False)


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "number", "provider", "started_at", "duration_ms", "outcome", "error", "provider_status_code", "note",
            "retry_policy", "retry_wait_seconds",
        ]

    def to_representation(self, attempt):
        data = super().to_representation(attempt)
        if hides_provider_errors(self):
            data["error"] = "provider error" if data["error"] else ""
            data["note"] = public_reason(data["note"])
        return data


class DeliverySerializer(serializers.ModelSerializer):
    attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    def to_representation(self, delivery):
        data = super().to_representation(delivery)
        if hides_provider_errors(self):
            data["last_error"] = "provider error" if data["last_error"] else ""
            data["reason"] = public_reason(data["reason"])
        return data

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
    data = serializers.JSONField(source="payload_data", read_only=True)
    channels = serializers.ListField(child=serializers.CharField(), read_only=True)

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
