"""Operators manage the API clients (apps) here; a key is shown once, in the create answer."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from notifications.api import end_user_tokens
from notifications.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from notifications.api.permissions import IsOperator, ManagesApiClients
from notifications.models import ApiClient
from notifications.ops import audit

User = get_user_model()


class ApiClientSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), required=False,
        help_text="The user the app acts as (default: the caller); an active account.",
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
    # Not readOnly/required in the schema: an idempotent replay answers without it.
    key = serializers.CharField(required=False, help_text="The full key, shown this once: store it now (not in replays).")

    class Meta(ApiClientSerializer.Meta):
        fields = [*ApiClientSerializer.Meta.fields, "key"]


class TokenSecretSerializer(serializers.Serializer):
    token_secret = serializers.CharField(read_only=True, help_text="The HS256 secret, shown this once.")


class TokenPublicKeySerializer(serializers.Serializer):
    public_key = serializers.CharField(
        allow_blank=True, max_length=4000,
        help_text="PEM public key (RSA >= 2048 bits for RS256, P-256 for ES256); empty removes it.",
    )
    algorithm = serializers.CharField(read_only=True)

    def validate_public_key(self, pem):
        pem = pem.strip()
        if pem:
            try:
                end_user_tokens.public_key_algorithm(pem)
            except ValueError as error:
                raise serializers.ValidationError(str(error)) from error
        return pem


class ApiClientViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ApiClient.objects.select_related("owner").order_by("-created_at", "-id")
    serializer_class = ApiClientSerializer
    permission_classes = [IsAuthenticated, IsOperator, ManagesApiClients]

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
        audit.record_request(request, audit.Action.API_CLIENT_CREATE, client,
                             after={"name": client.name, "owner": client.owner.get_username(), "scopes": client.scopes})
        return Response(IssuedApiClientSerializer(client).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiClientSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        client = self.get_object()
        before = {"active": client.active}
        client.revoke()
        audit.record_request(request, audit.Action.API_CLIENT_REVOKE, client, before=before, after={"active": False})
        return Response(ApiClientSerializer(client).data)

    @extend_schema(
        request=None, responses={200: TokenSecretSerializer},
        description="A new HS256 secret for the end-user tokens this app signs; the previous one stops working.",
    )
    @action(detail=True, methods=["post"], url_path="token-secret")
    def token_secret(self, request, pk=None):
        client = self.get_object()
        client.token_secret = end_user_tokens.new_token_secret()
        client.save(update_fields=["token_secret"])
        return Response({"token_secret": client.token_secret})

    @extend_schema(request=TokenPublicKeySerializer, responses={200: TokenPublicKeySerializer},
                   description="Register the public key that verifies the app's RS256/ES256 end-user tokens.")
    @action(detail=True, methods=["put"], url_path="token-public-key")
    def token_public_key(self, request, pk=None):
        client = self.get_object()
        serializer = TokenPublicKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client.token_public_key = serializer.validated_data["public_key"]
        client.save(update_fields=["token_public_key"])
        algorithm = end_user_tokens.public_key_algorithm(client.token_public_key) if client.token_public_key else None
        return Response({"public_key": client.token_public_key, "algorithm": algorithm})
