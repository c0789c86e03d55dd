"""Broadcasts whose fan-out stalled (a lost broker message, a killed worker past its retries)
are planned again; their done chunks are skipped, so only the rest is sent."""

from django.conf import settings
from django.utils import timezone

from notifications.models import Broadcast
from notifications.tasks import plan_broadcast


def stalled(older_than):
    return Broadcast.objects.filter(
        status__in=[Broadcast.Status.PENDING, Broadcast.Status.FANNING_OUT], created_at__lt=older_than
    )


def resume_stalled(now=None):
    """Plan again every stalled broadcast; returns how many."""
    now = now or timezone.now()
    older_than = now - timezone.timedelta(seconds=settings.NOTIFY_BROADCAST_RESUME_AFTER)
    ids = [str(pk) for pk in stalled(older_than).values_list("id", flat=True)]
    for broadcast_id in ids:
        plan_broadcast.delay(broadcast_id)
    return len(ids)
