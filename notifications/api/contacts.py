"""Where users are reached: their profile (email, phone, locale, time zone) and recipients
onboarded by apps. Each channel's own contact points (push subscriptions, webhook endpoints,
Slack webhooks) have their API in their channel package, on the base class here."""

import ipaddress
import re
import zoneinfo
from datetime import UTC, datetime
from urllib.parse import urlsplit

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

from channels_delivery.engine.netguard import BlockedAddressError, check_address
from notifications.api import end_user_tokens
from notifications.api.auth import api_client_of
from notifications.api.permissions import CanManageRecipients, IsEndUser, recipients_of
from notifications.models import RecipientProfile, Topic
from notifications.phone import InvalidPhoneNumber, normalise_e164
from notifications.planning.quiet_hours import is_known_time_zone
from notifications.planning.templating import LOCALE
from notifications.tenancy import grant

User = get_user_model()
TIME_ZONES = zoneinfo.available_timezones()
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
    timezone = serializers.ChoiceField(
        choices=sorted(TIME_ZONES), required=False, help_text="An IANA time zone, e.g. Europe/Paris."
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


CONTACT_FIELDS = ("email", "phone")


def write_profile(user, data, by_user=False):
    """Store the given fields. Contact points a user sets themselves are marked as theirs."""
    if "email" in data:
        user.email = data["email"]
        user.save(update_fields=["email"])
    profile, _ = RecipientProfile.objects.get_or_create(user=user)
    fields = [name for name in ("phone", "locale", "timezone") if name in data]
    for name in fields:
        setattr(profile, name, data[name])
    if by_user:
        mine = [name for name in CONTACT_FIELDS if name in data]
        if set(mine) - set(profile.user_set):
            profile.user_set = sorted({*profile.user_set, *mine})
            fields.append("user_set")
    if fields:
        profile.save(update_fields=fields)
    user.profile = profile


def user_set_conflicts(user, data):
    """Field errors for an app changing a contact point the user set themselves."""
    profile = getattr(user, "profile", None)
    current = {"email": user.email, "phone": profile.phone if profile else ""}
    return {
        name: ["The user set this themselves; an app cannot change it."]
        for name in CONTACT_FIELDS
        if profile is not None and name in profile.user_set and name in data and data[name] != current[name]
    }


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
        write_profile(request.user, serializer.validated_data, by_user=True)
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


class EndUserTokenRequestSerializer(serializers.Serializer):
    expires_in = serializers.IntegerField(
        min_value=30, default=lambda: min(900, settings.NOTIFY_END_USER_TOKEN_MAX_LIFETIME),
        help_text="Seconds the token stays valid (at most NOTIFY_END_USER_TOKEN_MAX_LIFETIME).",
    )

    def validate_expires_in(self, value):
        if value > settings.NOTIFY_END_USER_TOKEN_MAX_LIFETIME:
            raise serializers.ValidationError(
                f"At most {settings.NOTIFY_END_USER_TOKEN_MAX_LIFETIME} seconds: end-user tokens are short-lived."
            )
        return value


class EndUserTokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    token_type = serializers.CharField()
    expires_at = serializers.DateTimeField()


class RecipientViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Apps onboard their users: PUT creates or updates a recipient by user id (username).

    A client reaches only its own recipients (tenancy.managed_users): someone else's, like an
    operator's account, is a 404 exactly like a user that does not exist. Reading needs the
    `read` scope, writing `send`; contact points the user set themselves are not overwritten.
    """

    serializer_class = RecipientSerializer
    permission_classes = [IsAuthenticated, CanManageRecipients]
    queryset = User.objects.none()  # for the schema; get_queryset() answers per caller
    lookup_field = "username"
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[\w.@+-]{1,150}"

    def get_queryset(self):
        return recipients_of(api_client_of(self.request)).select_related("profile").order_by("pk")

    @extend_schema(
        request=EndUserTokenRequestSerializer,
        responses={201: EndUserTokenSerializer},
        description="A short-lived end-user token (JWT, HS256, signed with the calling API client's token "
        "secret) for this recipient: the app hands it to its front end for the inbox API and WebSocket.",
    )
    @action(detail=True, methods=["post"])
    def token(self, request, id=None):
        client = api_client_of(request)
        if client is None:
            raise PermissionDenied("End-user tokens are minted with an API key (send scope) for its own recipients.")
        user = self.get_object()
        ask = EndUserTokenRequestSerializer(data=request.data)
        ask.is_valid(raise_exception=True)
        token, expires = end_user_tokens.mint(client, user, ask.validated_data["expires_in"])
        body = {"token": token, "token_type": "Bearer", "expires_at": datetime.fromtimestamp(expires, UTC)}
        return Response(EndUserTokenSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RecipientSerializer, responses={200: RecipientSerializer, 201: RecipientSerializer})
    @transaction.atomic
    def update(self, request, id=None):
        serializer = RecipientSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        client = api_client_of(request)
        user, created = User.objects.get_or_create(username=id)
        if created:
            grant(client, [user])
        elif not self.get_queryset().filter(pk=user.pk).exists():
            raise NotFound("No recipient with this id.")
        elif errors := user_set_conflicts(user, data):
            raise serializers.ValidationError(errors)
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
