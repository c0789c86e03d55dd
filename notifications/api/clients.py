"""Operators manage the API clients (apps) here; a key is shown once, in the create answer."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from notifications.api.permissions import IsOperator
from notifications.models import ApiClient

User = get_user_model()


class ApiClientSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.all(), required=False,
        help_text="The user the app acts as (default: the caller).",
    )
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiClient.SCOPES), allow_empty=False, max_length=3,
        default=lambda: ["send", "read"],
    )

    class Meta:
        model = ApiClient
        fields = ["id", "name", "owner", "key_prefix", "scopes", "active", "created_at", "last_used_at"]
        read_only_fields = ["id", "key_prefix", "active", "created_at", "last_used_at"]

    def validate_scopes(self, scopes):
        return list(dict.fromkeys(scopes))


class IssuedApiClientSerializer(ApiClientSerializer):
    key = serializers.CharField(read_only=True, help_text="The full key, shown this once: store it now.")

    class Meta(ApiClientSerializer.Meta):
        fields = [*ApiClientSerializer.Meta.fields, "key"]


class ApiClientViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ApiClient.objects.select_related("owner").order_by("-created_at", "-id")
    serializer_class = ApiClientSerializer
    permission_classes = [IsAuthenticated, IsOperator]

    @extend_schema(
        request=ApiClientSerializer, parameters=[IDEMPOTENCY_PARAMETER], responses={201: IssuedApiClientSerializer}
    )
    @idempotent(redact=("key",))
    def create(self, request):
        serializer = ApiClientSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        client, key = ApiClient.issue(data["name"], data.get("owner") or request.user, scopes=data["scopes"])
        client.key = key
        return Response(IssuedApiClientSerializer(client).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiClientSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        client = self.get_object()
        client.active = False
        client.save(update_fields=["active"])
        return Response(ApiClientSerializer(client).data)
