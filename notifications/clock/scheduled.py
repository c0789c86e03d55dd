"""Scheduled sends: due notifications leave Postgres for the dispatch queue, a chunk at a time.

Far-future sends never wait in the broker as ETA tasks (those come back twice after Redis's
visibility timeout and vanish with a flushed Redis); they wait here as status `scheduled`.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications.models import Notification, NotificationStatus
from notifications.planning.dispatch import dispatch_rows_on_commit

logger = logging.getLogger(__name__)


def dispatch_due(now=None, chunk=None, max_chunks=20):
    """Claim due scheduled notifications (skipping rows another beat task holds), flip them to
    pending and enqueue dispatch after commit. Cancelled ones are not `scheduled`, so never due."""
    now = now or timezone.now()
    chunk = chunk or settings.NOTIFY_SCHEDULED_CHUNK
    dispatched = expired = 0
    for _ in range(max_chunks):
        with transaction.atomic():
            ids = list(
                Notification.objects.due(now)
                .select_for_update(skip_locked=True)
                .order_by("scheduled_at")
                .values_list("id", flat=True)[:chunk]
            )
            if not ids:
                break
            claimed = Notification.objects.filter(id__in=ids)
            expired += claimed.filter(expires_at__lte=now).update(status=NotificationStatus.EXPIRED)
            live = list(claimed.exclude(expires_at__lte=now).values_list("id", "priority"))
            Notification.objects.filter(id__in=[i for i, _ in live]).update(status=NotificationStatus.PENDING)
            dispatch_rows_on_commit(live)
            dispatched += len(live)
        if len(ids) < chunk:
            break
    if dispatched or expired:
        logger.info("scheduled: %d due notifications dispatched, %d expired before their time", dispatched, expired)
    return {"dispatched": dispatched, "expired": expired}
