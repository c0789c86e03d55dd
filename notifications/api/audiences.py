"""Following a broadcast's fan-out: GET /api/broadcasts/{id}/."""

from django.db.models import Count, Q
from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAuthenticated

from notifications.api.auth import CanSend, api_client_of
from notifications.api.permissions import ClientScopes
from notifications.api.serializers import BroadcastSerializer
from notifications.models import Broadcast


class BroadcastViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Broadcasts the calling API client started (staff see all), with their progress."""

    serializer_class = BroadcastSerializer
    permission_classes = [IsAuthenticated, CanSend, ClientScopes]
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        queryset = Broadcast.objects.annotate(
            chunks_total=Count("chunks"), chunks_done=Count("chunks", filter=Q(chunks__done_at__isnull=False))
        ).order_by("-created_at", "-id")
        client = api_client_of(self.request)
        return queryset.filter(sender=client) if client is not None else queryset
