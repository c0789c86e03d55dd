"""The caller's Telegram chats with our bot."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from channels_delivery.channels.telegram.models import TelegramChat
from notifications.api.contacts import OwnContactPoints
from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent


class TelegramChatSerializer(serializers.ModelSerializer):
    class Meta:
        model = TelegramChat
        fields = ["id", "chat_id", "label", "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]
        validators = []  # uniqueness per user is an upsert, not an error


class TelegramChatViewSet(OwnContactPoints):
    """Register (upsert by chat id), list and remove the caller's Telegram chats."""

    serializer_class = TelegramChatSerializer

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER], responses={201: TelegramChatSerializer,
                                                                 200: TelegramChatSerializer})
    @idempotent()
    def create(self, request):
        serializer = TelegramChatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        chat, created = TelegramChat.objects.update_or_create(
            user=request.user, chat_id=data["chat_id"],
            defaults={"label": data.get("label", ""), "active": True, "deactivated_reason": ""},
        )
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(TelegramChatSerializer(chat).data, status=answer)
