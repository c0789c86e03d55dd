"""The audit trail for operators: who did what, newest first."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, serializers
from rest_framework.exceptions import ValidationError

from ..models import AuditEvent
from .permissions import IsOperator


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "action", "actor", "actor_user", "actor_client", "via", "target_type",
                  "target_id", "target_repr", "reason", "before", "after", "request_id"]


class AuditEventList(generics.ListAPIView):
    serializer_class = AuditEventSerializer
    permission_classes = [permissions.IsAuthenticated, IsOperator]

    @extend_schema(parameters=[
        OpenApiParameter("action", OpenApiTypes.STR, enum=AuditEvent.Action.values),
        OpenApiParameter("target_type", OpenApiTypes.STR, description="e.g. notifications.notification"),
        OpenApiParameter("target_id", OpenApiTypes.STR),
        OpenApiParameter("actor", OpenApiTypes.STR, description="Part of the actor's name."),
        OpenApiParameter("since", OpenApiTypes.DATETIME, description="At or after (ISO 8601)."),
    ])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        queryset = AuditEvent.objects.order_by("-created_at", "-id")
        params, errors = self.request.query_params, {}
        action = params.get("action")
        if action:
            if action not in AuditEvent.Action.values:
                errors["action"] = [f"Unknown action '{action[:50]}'."]
            queryset = queryset.filter(action=action)
        for name in ("target_type", "target_id"):
            if params.get(name):
                queryset = queryset.filter(**{name: params[name]})
        if params.get("actor"):
            queryset = queryset.filter(actor__icontains=params["actor"])
        since = params.get("since")
        if since:
            # DRF's field, as the other `since` filters: it also moves the moment to UTC, since
            # Postgres refuses offsets beyond +-15:59 that ISO 8601 allows (the query failed).
            try:
                moment = serializers.DateTimeField().run_validation(since)
            except ValidationError as error:
                errors["since"] = error.detail
            else:
                queryset = queryset.filter(created_at__gte=moment)
        if errors:
            raise ValidationError(errors)
        return queryset
