"""A user's preferences as one document:

    {"email": true, "push": false, "inApp": true, ...,                 # per channel, all categories
     "channels": {"orders": {"email": true, "push": true, ...}},      # per category and channel
     "quietHours": {"enabled": true, "timezone": "Europe/Paris", "start": "22:00", "end": "07:00",
                    "days": [1, 2, 3, 4, 5]}}

GET answers the effective values (after groups and system defaults). PUT and PATCH both change
only what the body names: true/false stores the user's own switch, null removes it (back to the
defaults), and "quietHours": null removes the quiet hours.
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.permissions import IsEndUser, IsOperator
from notifications.models import Category, Channel, ChannelPreference, QuietHours
from notifications.ops import audit
from notifications.planning.preferences import PreferenceBook
from notifications.planning.quiet_hours import is_known_time_zone

CHANNEL_KEYS = {"inApp" if channel == Channel.INAPP else channel.value: channel.value for channel in Channel}


class StrictBooleanField(serializers.BooleanField):
    """JSON true/false only: "yes", 1 and "false" are wrong types here."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)


class ClosedSerializer(serializers.Serializer):
    """Unknown keys are field errors, not silently dropped."""

    unknown_message = "Unknown field."

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = [key for key in data if key not in self.fields]
            if unknown:
                raise serializers.ValidationError({key: [self.unknown_message] for key in unknown})
        return super().to_internal_value(data)


def switch_fields():
    return {key: StrictBooleanField(required=False, allow_null=True) for key in CHANNEL_KEYS}


ChannelSwitchesSerializer = type(
    "ChannelSwitchesSerializer", (ClosedSerializer,), {"unknown_message": "Unknown channel.", **switch_fields()}
)


class QuietHoursSerializer(ClosedSerializer):
    enabled = StrictBooleanField(default=True)
    timezone = serializers.CharField(max_length=64, help_text="IANA time zone, e.g. Europe/Paris.")
    start = serializers.TimeField(format="%H:%M", input_formats=["%H:%M"])
    end = serializers.TimeField(format="%H:%M", input_formats=["%H:%M"])
    days = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=7), max_length=7, default=list,
        help_text="ISO weekdays (1 = Monday) on which the window starts; empty for every day.",
    )

    def validate_timezone(self, value):
        if not is_known_time_zone(value):
            raise serializers.ValidationError(f"Unknown time zone '{value}'.")
        return value

    def validate_days(self, days):
        return sorted(set(days))

    def validate(self, attrs):
        if attrs["start"] == attrs["end"]:
            raise serializers.ValidationError({"end": ["The window must end at another time than it starts."]})
        return attrs


PreferencesBase = type("PreferencesBase", (ClosedSerializer,), switch_fields())


class PreferencesSerializer(PreferencesBase):
    unknown_message = "Unknown channel or field."
    channels = serializers.DictField(
        child=ChannelSwitchesSerializer(), required=False, help_text="Per category key: a switch per channel."
    )
    quietHours = QuietHoursSerializer(required=False, allow_null=True)  # noqa: N815 (the API's name)
    critical = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Categories that cannot be switched off."
    )

    def validate_channels(self, channels):
        categories = {c.key: c for c in Category.objects.filter(key__in=list(channels))}
        errors = {}
        for key, switches in channels.items():
            if key not in categories:
                errors[key] = [f"Unknown category '{key}'."]
            elif categories[key].critical and False in switches.values():
                off = [name for name, enabled in switches.items() if enabled is False]
                errors[key] = {
                    name: [f"Category '{key}' is critical and cannot be switched off."] for name in off
                }
        if errors:
            raise serializers.ValidationError(errors)
        return channels


def document(user):
    book = PreferenceBook.load([user.pk])
    categories = list(Category.objects.order_by("key"))
    quiet_hours = QuietHours.objects.filter(user=user).first()
    doc = {key: book.switch(user.pk, None, channel)[0] for key, channel in CHANNEL_KEYS.items()}
    doc["channels"] = {
        category.key: {
            key: category.critical or book.switch(user.pk, category.key, channel)[0]
            for key, channel in CHANNEL_KEYS.items()
        }
        for category in categories
    }
    doc["quietHours"] = QuietHoursSerializer(quiet_hours).data if quiet_hours else None
    doc["critical"] = [category.key for category in categories if category.critical]
    return doc


def set_switch(user, category, channel, enabled):
    if enabled is None:
        ChannelPreference.objects.filter(user=user, category_id=category, channel=channel).delete()
    else:
        ChannelPreference.objects.update_or_create(
            user=user, category_id=category, channel=channel, defaults={"enabled": enabled}
        )


@transaction.atomic
def apply(user, data):
    for key, channel in CHANNEL_KEYS.items():
        if key in data:
            set_switch(user, None, channel, data[key])
    for category, switches in data.get("channels", {}).items():
        for key, enabled in switches.items():
            set_switch(user, category, CHANNEL_KEYS[key], enabled)
    if "quietHours" in data:
        if data["quietHours"] is None:
            QuietHours.objects.filter(user=user).delete()
        else:
            QuietHours.objects.update_or_create(user=user, defaults=data["quietHours"])


class PreferencesViewBase(APIView):
    serializer_class = PreferencesSerializer

    def target(self, request, **kwargs):
        raise NotImplementedError

    @extend_schema(responses=PreferencesSerializer)
    def get(self, request, **kwargs):
        return Response(document(self.target(request, **kwargs)))

    @extend_schema(request=PreferencesSerializer, responses=PreferencesSerializer)
    def put(self, request, **kwargs):
        user = self.target(request, **kwargs)
        serializer = PreferencesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        before = document(user)
        apply(user, serializer.validated_data)
        after = document(user)
        if after != before:
            audit.record_request(request, audit.Action.PREFERENCES_CHANGE, user, before=before, after=after)
        return Response(after)

    @extend_schema(request=PreferencesSerializer, responses=PreferencesSerializer)
    def patch(self, request, **kwargs):
        return self.put(request, **kwargs)


class MyPreferencesView(PreferencesViewBase):
    """The authenticated end user's own preferences."""

    permission_classes = [IsAuthenticated, IsEndUser]

    def target(self, request, **kwargs):
        return request.user


class UserPreferencesView(PreferencesViewBase):
    """Any user's preferences, for operators."""

    permission_classes = [IsAuthenticated, IsOperator]

    def target(self, request, username):
        return get_object_or_404(get_user_model(), username=username)
