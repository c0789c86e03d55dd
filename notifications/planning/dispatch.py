"""Handing notifications to the dispatch queue: the one way every path does it.

The message leaves only after the transaction that stored (or claimed) the rows commits, so the
dispatch task never looks for rows that do not exist yet, and it rides in the notification's
priority lane so an urgent send never queues behind a bulk backlog. The task is named, not
imported: planning sits below the tasks that call it.
"""

from collections import defaultdict

from celery import current_app
from django.db import transaction

from config.celery import message_priority

DISPATCH_TASK = "notifications.dispatch_notifications"
PLAN_BROADCAST_TASK = "notifications.plan_broadcast"
# One dispatch message carries at most this many notifications.
DISPATCH_BATCH = 500


def on_commit_or_withdraw(send, withdraw=None):
    """Run `send` after commit; if the broker cannot take it and `withdraw` is given, remove what
    was just stored and let the error reach the caller (a 503): a request that answers an error
    has accepted nothing half-way."""
    if withdraw is None:
        transaction.on_commit(send)
        return

    def send_or_withdraw():
        try:
            send()
        except Exception:
            withdraw()
            raise

    transaction.on_commit(send_or_withdraw)


def dispatch_on_commit(notification_ids, priority=None, withdraw=None):
    """Enqueue dispatch of these notifications (all of one priority) after the current commit."""
    ids = [str(notification_id) for notification_id in notification_ids]
    if not ids:
        return
    lane = message_priority(priority)

    def send():
        for start in range(0, len(ids), DISPATCH_BATCH):
            current_app.signature(DISPATCH_TASK, args=(ids[start:start + DISPATCH_BATCH],)).apply_async(priority=lane)

    on_commit_or_withdraw(send, withdraw)


def plan_broadcast_on_commit(broadcast_id, withdraw=None):
    """Enqueue planning of a broadcast's fan-out after the current commit."""
    on_commit_or_withdraw(
        lambda: current_app.signature(PLAN_BROADCAST_TASK, args=(str(broadcast_id),)).apply_async(), withdraw
    )


def dispatch_rows_on_commit(rows):
    """Enqueue dispatch of (id, priority) pairs, one message per lane."""
    by_priority = defaultdict(list)
    for notification_id, priority in rows:
        by_priority[priority].append(notification_id)
    for priority, ids in by_priority.items():
        dispatch_on_commit(ids, priority)
