"""The caller's inbox: filters and ordering on the list, read/seen/archived marks, counts."""

from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from notifications.api.filters import StrictQuery
from notifications.api.permissions import IsEndUser
from notifications.api.serializers import NotificationSerializer
from notifications.models import Notification, NotificationStatus, Priority
from notifications import inbox_events

PRIORITY_RANK = Case(
    *[When(priority=priority, then=Value(rank)) for rank, priority in enumerate(Priority.values)],
    output_field=IntegerField(),
)
ORDERINGS = {
    "-created_at": ["-created_at", "-id"],
    "created_at": ["created_at", "id"],
    "-priority": ["-priority_rank", "-created_at", "-id"],
    "priority": ["priority_rank", "-created_at", "-id"],
}
MARKS = {"read": "read_at", "seen": "seen_at", "archived": "archived_at"}


class InboxFilterSerializer(StrictQuery):
    status = serializers.ChoiceField(choices=NotificationStatus.choices, required=False)
    category = serializers.SlugField(max_length=64, required=False)
    unread = serializers.BooleanField(required=False, allow_null=True, default=None)
    archived = serializers.BooleanField(required=False, allow_null=True, default=None)
    since = serializers.DateTimeField(required=False, help_text="Only notifications created at or after this.")
    ordering = serializers.ChoiceField(
        choices=list(ORDERINGS), required=False, default="-created_at",
        help_text="created_at or priority (low to urgent); a leading '-' reverses.",
    )


def filter_inbox(queryset, params):
    filters = InboxFilterSerializer(data=params)
    filters.is_valid(raise_exception=True)
    wanted = filters.validated_data
    if "status" in wanted:
        queryset = queryset.filter(status=wanted["status"])
    if "category" in wanted:
        queryset = queryset.filter(category_id=wanted["category"])
    if wanted.get("unread") is not None:
        queryset = queryset.filter(read_at__isnull=wanted["unread"])
    if wanted.get("archived") is not None:
        queryset = queryset.filter(archived_at__isnull=not wanted["archived"])
    if "since" in wanted:
        queryset = queryset.filter(created_at__gte=wanted["since"])
    ordering = wanted.get("ordering") or "-created_at"
    if "priority" in ordering:
        queryset = queryset.annotate(priority_rank=PRIORITY_RANK)
    return queryset.order_by(*ORDERINGS[ordering])


def set_mark(notification, mark, on):
    """Set (keeping the first time) or clear a mark; the user's open connections hear of a change."""
    field = MARKS[mark]
    before = getattr(notification, field)
    if mark == "read" and on:
        if before is None:
            # Reading also cancels a pending escalation, at once.
            Notification.objects.filter(pk=notification.pk).mark_all_read()
            notification.refresh_from_db(fields=["read_at"])
            inbox_events.mark_changed.send(sender=Notification, notification=notification, status="read",
                                           at=notification.read_at)
        return notification
    value = (before or timezone.now()) if on else None
    if value != before:
        setattr(notification, field, value)
        notification.save(update_fields=[field])
        inbox_events.mark_changed.send(sender=Notification, notification=notification,
                                       status=mark if on else f"un{mark}", at=value)
    return notification


MARK_SCHEMA = extend_schema(
    request=None,
    responses={200: NotificationSerializer},
    description="PUT sets the mark (keeps the first time), DELETE clears it. Only the recipient may mark.",
)


class InboxActions:
    """Mixed into NotificationViewSet: /read, /seen, /archived, read-all and unread-count."""

    inbox_actions = {"read", "seen", "archived", "read_all", "unread_count"}

    def _mark(self, request, mark):
        notification = set_mark(self.get_object(), mark, on=request.method == "PUT")
        return Response(self.get_serializer(notification).data)

    @MARK_SCHEMA
    @action(detail=True, methods=["put", "delete"], permission_classes=[IsAuthenticated, IsEndUser])
    def read(self, request, pk=None):
        return self._mark(request, "read")

    @MARK_SCHEMA
    @action(detail=True, methods=["put", "delete"], permission_classes=[IsAuthenticated, IsEndUser])
    def seen(self, request, pk=None):
        return self._mark(request, "seen")

    @MARK_SCHEMA
    @action(detail=True, methods=["put", "delete"], permission_classes=[IsAuthenticated, IsEndUser])
    def archived(self, request, pk=None):
        return self._mark(request, "archived")

    @extend_schema(
        request=None,
        responses={200: inline_serializer("ReadAll", {"updated": serializers.IntegerField()})},
        description="Marks every unread notification of the caller read.",
    )
    @action(detail=False, methods=["post"], url_path="read-all", permission_classes=[IsAuthenticated, IsEndUser])
    def read_all(self, request):
        updated = self.get_queryset().mark_all_read()
        if updated:
            inbox_events.marks_changed.send(sender=Notification, user_id=request.user.pk)
        return Response({"updated": updated}, status=status.HTTP_200_OK)

    @extend_schema(
        parameters=[], responses={200: inline_serializer("UnreadCount", {"unread": serializers.IntegerField()})}
    )
    @action(detail=False, methods=["get"], url_path="unread-count", pagination_class=None,
            permission_classes=[IsAuthenticated, IsEndUser])
    def unread_count(self, request):
        unread = self.get_queryset().unread().filter(archived_at__isnull=True).count()
        return Response({"unread": unread})
