"""The caller's Web Push subscriptions."""

import base64
import binascii
import re

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from notifications.api.contacts import OwnContactPoints, reachable_url
from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from channels_delivery.channels.push.models import MobileDevice
from notifications.models import PushSubscription


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
        with transaction.atomic():
            if not self.get_queryset().filter(endpoint=data["endpoint"]).exists():
                self.refuse_beyond_cap("endpoint")
            return self.upsert(request, data)

    def upsert(self, request, data):
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
