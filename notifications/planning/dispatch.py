"""Handing notifications to the dispatch queue: the one way every path does it.

The message leaves only after the transaction that stored (or claimed) the rows commits, so the
dispatch task never looks for rows that do not exist yet, and it rides in the notification's
priority lane so an urgent send never queues behind a bulk backlog. The task is named, not
imported: planning sits below the tasks that call it.

Coalescing (the API's sends, NOTIFY_DISPATCH_COALESCE): a message per request would plan, and
then deliver, every notification on its own, at several times the cost of planning and
delivering them together. So a send's ids go to its lane's waiting list in Redis instead, and
one drain task per lane (woken by the send that finds the lane asleep) takes whatever waits,
plans it as one batch, and goes on until the list is empty. Nothing is added to a send's path
when the lane is idle (the drain wakes at once); under load, batches form by themselves.
The list is a hint, never the truth: every id in it is a `pending` row in Postgres, and one that
a lost list, a killed drain or a lost wake-up leaves behind is re-dispatched by the reaper
(NOTIFY_REAPER_PENDING_AFTER), which also wakes a lane whose list waits with no drain awake.
"""

from collections import defaultdict

from celery import current_app
from django.conf import settings
from django.db import transaction

from config.celery import PRIORITY_LANES, message_priority
from notifications import shared_state

DISPATCH_TASK = "notifications.dispatch_notifications"
DRAIN_TASK = "notifications.drain_dispatch"
PLAN_BROADCAST_TASK = "notifications.plan_broadcast"
# One dispatch message (and one drained batch) carries at most this many notifications.
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


def dispatch_on_commit(notification_ids, priority=None, withdraw=None, coalesce=False):
    """Enqueue dispatch of these notifications (all of one priority) after the current commit;
    `coalesce`: through the lane's waiting list (see above), when NOTIFY_DISPATCH_COALESCE."""
    ids = [str(notification_id) for notification_id in notification_ids]
    if not ids:
        return
    lane = message_priority(priority)

    def send():
        if coalesce and settings.NOTIFY_DISPATCH_COALESCE and len(ids) <= DISPATCH_BATCH:
            return wait_in_lane(ids, lane)
        for start in range(0, len(ids), DISPATCH_BATCH):
            current_app.signature(DISPATCH_TASK, args=(ids[start:start + DISPATCH_BATCH],)).apply_async(priority=lane)

    on_commit_or_withdraw(send, withdraw)


def waiting_key(lane):
    return f"notify:dispatch:waiting:{lane}"


def awake_key(lane):
    return f"notify:dispatch:awake:{lane}"


def wait_in_lane(ids, lane):
    """Add ids to the lane's waiting list, and wake its drain task unless one is awake."""
    pipe = shared_state.client().pipeline(transaction=False)
    pipe.rpush(waiting_key(lane), *ids)
    pipe.set(awake_key(lane), 1, nx=True, ex=settings.NOTIFY_DISPATCH_AWAKE_TTL)
    _, woke = pipe.execute()
    if woke:
        try:
            wake(lane)
        except Exception:
            shared_state.client().delete(awake_key(lane))  # no drain is coming: the next send wakes one
            raise


def wake(lane):
    current_app.signature(DRAIN_TASK, args=(lane,)).apply_async(priority=lane)


def take_waiting(lane, count=DISPATCH_BATCH):
    """(up to `count` ids waiting in the lane, how many still wait); keeps the lane awake."""
    pipe = shared_state.client().pipeline(transaction=False)
    pipe.lpop(waiting_key(lane), count)
    pipe.llen(waiting_key(lane))
    pipe.expire(awake_key(lane), settings.NOTIFY_DISPATCH_AWAKE_TTL)
    ids, left, _ = pipe.execute()
    return [i.decode() for i in ids or []], left


def await_waiting(lane, timeout):
    """take_waiting(), after blocking up to `timeout` seconds for the first id to arrive."""
    redis = shared_state.client()
    redis.expire(awake_key(lane), settings.NOTIFY_DISPATCH_AWAKE_TTL)
    first = redis.blpop([waiting_key(lane)], timeout=timeout)
    if first is None:
        return [], 0
    rest, left = take_waiting(lane, DISPATCH_BATCH - 1)
    return [first[1].decode(), *rest], left


def give_back(ids, lane):
    """Ids a drain took but could neither plan nor hand on: first in line again."""
    shared_state.client().lpush(waiting_key(lane), *reversed(ids))


def may_sleep(lane):
    """Called by a drain that found its list empty: True when it may stop. A send that came
    between the drain's last look and now found the lane awake and woke nobody, so the drain
    looks once more after letting go, and goes on if it can take the lane back."""
    redis = shared_state.client()
    redis.delete(awake_key(lane))
    if not redis.llen(waiting_key(lane)):
        return True
    return not redis.set(awake_key(lane), 1, nx=True, ex=settings.NOTIFY_DISPATCH_AWAKE_TTL)


def wake_stalled_lanes():
    """Lanes whose list waits with no drain awake (its wake-up lost, its drain killed): woken.
    Returns how many ids were waiting in them."""
    redis, woken = shared_state.client(), 0
    for lane in sorted(set(PRIORITY_LANES.values())):
        waiting = redis.llen(waiting_key(lane))
        if waiting and redis.set(awake_key(lane), 1, nx=True, ex=settings.NOTIFY_DISPATCH_AWAKE_TTL):
            wake(lane)
            woken += waiting
    return woken


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
