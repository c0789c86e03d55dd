"""Where users are reached: their profile (email, phone, locale, time zone), Web Push
subscriptions, webhook endpoints and Slack webhooks; and recipients onboarded by apps."""

import base64
import binascii
import ipaddress
import re
import zoneinfo
from urllib.parse import urlsplit

import phonenumbers
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from channels_delivery.netguard import BlockedAddressError, check_address
from channels_delivery.webhook import RESERVED_HEADERS

from ..models import (
    MobileDevice,
    PushSubscription,
    RecipientProfile,
    SlackBotTarget,
    SlackWebhook,
    SlackWorkspace,
    Topic,
    WebhookEndpoint,
)
from .idempotency import IDEMPOTENCY_PARAMETER, idempotent
from .permissions import CanManageRecipients, IsEndUser

User = get_user_model()
TIME_ZONES = zoneinfo.available_timezones()
LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


def e164(value):
    """The number in E.164, or a ValidationError: it must be a valid number with its country code."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as error:
        raise serializers.ValidationError(f"Not a phone number in international format (+...): {error}") from error
    if not phonenumbers.is_valid_number(number):
        raise serializers.ValidationError("Not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def reachable_url(url):
    """Refuse a target that names a private, loopback or link-local address outright (an IP
    literal or localhost), unless WEBHOOK_ALLOWED_HOSTS opens it. Names are checked again at
    every send, where the resolved address is what counts."""
    host = (urlsplit(url).hostname or "").lower()
    literal = "127.0.0.1" if host == "localhost" else host
    try:
        ipaddress.ip_address(literal)
    except ValueError:
        return url
    try:
        check_address(host, literal)
    except BlockedAddressError as error:
        raise serializers.ValidationError("This address is not reachable from the service.") from error
    return url


class ProfileSerializer(serializers.Serializer):
    id = serializers.CharField(source="username", read_only=True, help_text="The user id (username).")
    email = serializers.EmailField(required=False, allow_blank=True)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=32, help_text="E.164, e.g. +14155550100.")
    locale = serializers.CharField(required=False, allow_blank=True, max_length=16, help_text="e.g. en, pt-BR.")
    timezone = serializers.CharField(required=False, max_length=64, help_text="An IANA time zone, e.g. Europe/Paris.")

    def validate_phone(self, value):
        return e164(value) if value else ""

    def validate_locale(self, value):
        if value and not LOCALE.match(value):
            raise serializers.ValidationError("Not a locale (e.g. en, de-CH).")
        return value.replace("_", "-")

    def validate_timezone(self, value):
        if value not in TIME_ZONES:
            raise serializers.ValidationError(f"Unknown time zone '{value}'.")
        return value

    def to_representation(self, user):
        profile = getattr(user, "profile", None) or RecipientProfile(user=user)
        return {
            "id": user.username, "email": user.email, "phone": profile.phone, "locale": profile.locale,
            "timezone": profile.timezone,
        }


def write_profile(user, data):
    if "email" in data:
        user.email = data["email"]
        user.save(update_fields=["email"])
    profile, _ = RecipientProfile.objects.get_or_create(user=user)
    fields = [name for name in ("phone", "locale", "timezone") if name in data]
    for name in fields:
        setattr(profile, name, data[name])
    if fields:
        profile.save(update_fields=fields)
    user.profile = profile


class ProfileView(GenericAPIView):
    """The caller's own contact details: email, phone (E.164), locale, time zone."""

    serializer_class = ProfileSerializer
    permission_classes = [IsAuthenticated, IsEndUser]

    def get_object(self):
        return self.request.user

    def get(self, request):
        return Response(ProfileSerializer(request.user).data)

    @transaction.atomic
    def put(self, request):
        serializer = ProfileSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        write_profile(request.user, serializer.validated_data)
        return Response(ProfileSerializer(request.user).data)

    @extend_schema(request=ProfileSerializer, responses={200: ProfileSerializer})
    def patch(self, request):
        return self.put(request)


def decoded_key(value, length, what):
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as error:
        raise serializers.ValidationError(f"{what} must be base64url.") from error
    if len(raw) != length:
        raise serializers.ValidationError(f"{what} must decode to {length} bytes.")
    return value


class PushKeysSerializer(serializers.Serializer):
    p256dh = serializers.CharField(max_length=200, help_text="The browser's P-256 public key, base64url.")
    auth = serializers.CharField(max_length=100, help_text="The 16-byte auth secret, base64url.")

    def validate_p256dh(self, value):
        return decoded_key(value, 65, "p256dh")

    def validate_auth(self, value):
        return decoded_key(value, 16, "auth")


class PushSubscriptionSerializer(serializers.ModelSerializer):
    keys = PushKeysSerializer(write_only=True)

    class Meta:
        model = PushSubscription
        fields = ["id", "endpoint", "keys", "user_agent", "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]
        # Uniqueness per user is an upsert here, not a validation error.
        validators = []

    def validate_endpoint(self, url):
        return reachable_url(url)


class PushEndpointSerializer(serializers.Serializer):
    endpoint = serializers.URLField(max_length=1000)


class OwnContactPoints(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, IsEndUser]

    def get_queryset(self):
        return self.serializer_class.Meta.model.objects.filter(user=self.request.user).order_by("-created_at", "-id")


class PushSubscriptionViewSet(OwnContactPoints):
    """The caller's Web Push subscriptions: register (upsert by endpoint) and unregister."""

    serializer_class = PushSubscriptionSerializer

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER], responses={201: PushSubscriptionSerializer,
                                                                 200: PushSubscriptionSerializer})
    @idempotent()
    def create(self, request):
        serializer = PushSubscriptionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subscription, created = PushSubscription.objects.update_or_create(
            user=request.user,
            endpoint=data["endpoint"],
            defaults={"p256dh": data["keys"]["p256dh"], "auth": data["keys"]["auth"],
                      "user_agent": data.get("user_agent", ""), "active": True, "deactivated_reason": ""},
        )
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(PushSubscriptionSerializer(subscription).data, status=answer)

    @extend_schema(request=PushEndpointSerializer, responses={204: None})
    @action(detail=False, methods=["post"])
    def unregister(self, request):
        """Unregister by endpoint (what a browser knows); unknown endpoints are a 404."""
        serializer = PushEndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deleted, _ = self.get_queryset().filter(endpoint=serializer.validated_data["endpoint"]).delete()
        if not deleted:
            raise NotFound("No subscription with this endpoint.")
        return Response(status=status.HTTP_204_NO_CONTENT)


DEVICE_TOKENS = {
    "fcm": (re.compile(r"^[A-Za-z0-9_:\-.]{20,1024}$"), "an FCM registration token"),
    "apns": (re.compile(r"^[0-9a-f]{64}$"), "an APNs device token (64 hex digits)"),
}


class MobileDeviceSerializer(serializers.ModelSerializer):
    token = serializers.CharField(max_length=1024, help_text="The token the app got from Firebase or from APNs.")

    class Meta:
        model = MobileDevice
        fields = ["id", "provider", "token", "platform", "active", "created_at", "deactivated_reason"]
        read_only_fields = ["id", "active", "created_at", "deactivated_reason"]
        validators = []  # a known token is an upsert, not a validation error

    def validate(self, data):
        provider = data.get("provider", MobileDevice.Provider.FCM)
        token = data["token"].lower() if provider == "apns" else data["token"]
        pattern, what = DEVICE_TOKENS[provider]
        if not pattern.match(token):
            raise serializers.ValidationError({"token": [f"Must be {what}."]})
        return {**data, "provider": provider, "token": token}


class MobileDeviceViewSet(OwnContactPoints):
    """The caller's phones for native push (FCM or APNs): register (upsert by token) and remove."""

    serializer_class = MobileDeviceSerializer

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER], responses={201: MobileDeviceSerializer,
                                                                 200: MobileDeviceSerializer})
    @idempotent()
    def create(self, request):
        serializer = MobileDeviceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # A token names one app install: signing in as someone else on the phone moves it to them.
        device, created = MobileDevice.objects.update_or_create(
            provider=data["provider"], token=data["token"],
            defaults={"user": request.user, "platform": data.get("platform", ""), "active": True,
                      "deactivated_reason": ""},
        )
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(MobileDeviceSerializer(device).data, status=answer)


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


class SlackWebhookSerializer(serializers.ModelSerializer):
    url = serializers.URLField(max_length=500, write_only=True, help_text="The Slack incoming-webhook URL.")
    url_hint = serializers.SerializerMethodField(help_text="The URL's host and last characters (it is a secret).")

    class Meta:
        model = SlackWebhook
        fields = ["id", "url", "url_hint", "channel_name", "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]

    def validate_url(self, url):
        host = (urlsplit(url).hostname or "").lower()
        if host not in settings.SLACK_WEBHOOK_HOSTS:
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


class RecipientSerializer(ProfileSerializer):
    groups = serializers.ListField(
        child=serializers.CharField(max_length=150), required=False, max_length=100,
        help_text="Group (role) names; replaces the user's groups. Unknown groups are created.",
    )
    topics = serializers.ListField(
        child=serializers.SlugField(max_length=100), required=False, max_length=100,
        help_text="Topic keys the user follows; replaces them. Unknown topics are created.",
    )

    def to_representation(self, user):
        return {
            **super().to_representation(user),
            "groups": sorted(user.groups.values_list("name", flat=True)),
            "topics": sorted(user.topics.values_list("key", flat=True)),
        }


class RecipientViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Apps onboard their users: PUT creates or updates a recipient by user id (username)."""

    serializer_class = RecipientSerializer
    permission_classes = [IsAuthenticated, CanManageRecipients]
    # Operators' accounts are not recipients an app may read or change.
    queryset = User.objects.filter(is_active=True, is_staff=False, is_superuser=False).order_by("pk")
    lookup_field = "username"
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[\w.@+-]{1,150}"

    @extend_schema(request=RecipientSerializer, responses={200: RecipientSerializer, 201: RecipientSerializer})
    @transaction.atomic
    def update(self, request, id=None):
        serializer = RecipientSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user, created = User.objects.get_or_create(username=id)
        if user.is_staff or user.is_superuser:
            raise PermissionDenied("Operator accounts are not managed through this endpoint.")
        write_profile(user, data)
        if "groups" in data:
            for name in data["groups"]:
                Group.objects.get_or_create(name=name)
            user.groups.set(Group.objects.filter(name__in=data["groups"]))
        if "topics" in data:
            for key in data["topics"]:
                Topic.objects.get_or_create(key=key)
            user.topics.set(Topic.objects.filter(key__in=data["topics"]))
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(RecipientSerializer(user).data, status=answer)
