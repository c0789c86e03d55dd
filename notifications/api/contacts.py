"""Where users are reached: their profile (email, phone, locale, time zone) and recipients
onboarded by apps. Each channel's own contact points (push subscriptions, webhook endpoints,
Slack webhooks) have their API in their channel package, on the base class here."""

import ipaddress
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from channels_delivery.engine.netguard import BlockedAddressError, check_address
from notifications.api.permissions import CanManageRecipients, IsEndUser
from notifications.models import RecipientProfile, Topic
from notifications.phone import InvalidPhoneNumber, normalise_e164
from notifications.planning.quiet_hours import is_known_time_zone
from notifications.planning.templating import LOCALE

User = get_user_model()
TIME_ZONE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
# International format: + and the country code, digits that may be grouped by spaces, dots,
# dashes or parentheses (stored normalised to E.164).
PHONE_PATTERN = re.compile(r"^\+[1-9][0-9 ().-]{5,30}$")


def e164(value):
    """The number in E.164, or a ValidationError: it must be a valid number with its country code."""
    try:
        return normalise_e164(value)
    except InvalidPhoneNumber as error:
        raise serializers.ValidationError(f"Not a phone number in international format (+...): {error}") from error


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


class OwnContactPoints(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, IsEndUser]

    def get_queryset(self):
        return self.serializer_class.Meta.model.objects.filter(user=self.request.user).order_by("-created_at", "-id")

    def refuse_beyond_cap(self, field):
        """At most NOTIFY_MAX_CONTACT_POINTS_PER_USER of each kind: one user's hundred endpoints
        would multiply every delivery. The user's row is locked so concurrent adds count in turn."""
        User.objects.select_for_update().filter(pk=self.request.user.pk).first()
        cap = settings.NOTIFY_MAX_CONTACT_POINTS_PER_USER
        if self.get_queryset().count() >= cap:
            raise serializers.ValidationError({field: [f"At most {cap} per user; delete one first."]})


class ProfileSerializer(serializers.Serializer):
    id = serializers.CharField(source="username", read_only=True, help_text="The user id (username).")
    email = serializers.EmailField(required=False, allow_blank=True)
    phone = serializers.RegexField(
        PHONE_PATTERN, required=False, allow_blank=True, max_length=32,
        error_messages={"invalid": "Not a phone number in international format (+ and the country code)."},
        help_text="International format, stored as E.164, e.g. +14155550100 or +44 20 7946 0958; empty clears it.",
    )
    locale = serializers.RegexField(
        LOCALE, required=False, allow_blank=True, max_length=16, help_text="e.g. en, pt-BR.",
        error_messages={"invalid": "Not a locale (e.g. en, de-CH)."},
    )
    # A pattern, not an enum of ~600 names: the schema stays small and fuzzers do not walk every zone.
    timezone = serializers.RegexField(
        TIME_ZONE_PATTERN, required=False, max_length=64, help_text="An IANA time zone, e.g. Europe/Paris.",
        error_messages={"invalid": "Not an IANA time zone name (e.g. Europe/Paris)."},
    )

    def validate_phone(self, value):
        return e164(value) if value else ""

    def validate_locale(self, value):
        return value.replace("_", "-")

    def validate_timezone(self, value):
        if not is_known_time_zone(value):
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
