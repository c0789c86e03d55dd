"""Deliveries of one channel travelling and claimed in chunks: one broker message carries up to
NOTIFY_DELIVERY_CHUNK_SIZE first tries (NOTIFY_DELIVERY_CHUNK_SIZES per channel); one conditional
UPDATE ... RETURNING claims them; the provider calls go out together (concurrently, for providers
that allow it); one transaction records every attempt (one INSERT) and every success (one
UPDATE ... FROM (VALUES ...)) with the notifications' status.

Each delivery stays its own unit for whatever goes wrong: a transient failure is handed to the
per-delivery task as its first retry (the same policy, backoff and jitter, with the rest of its
chain as errbacks); a permanent one fails that delivery and starts its own fallback; deliveries
for which the provider's token bucket has no token now go out one by one, each booking its own
slot. The others of the chunk are not held up by any of them.
"""

import functools
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from channels_delivery import registry
from channels_delivery.engine import delivery as single, fallback, ratelimit, signals
from channels_delivery.engine.base import InvalidMessage, SendResult
from channels_delivery.engine.circuit import CLOSED, breaker_for
from channels_delivery.engine.errors import PermanentDeliveryError
from notifications.models import Delivery, DeliveryStatus, Notification, copy_create, settle_notifications

logger = logging.getLogger(__name__)

_pool = None
_pool_lock = threading.Lock()


def pool():
    """One thread pool per worker process for the chunks' provider calls."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.NOTIFY_CHUNK_THREADS, thread_name_prefix="chunk")
        return _pool


class ChunkBreaker:
    """A provider's shared breaker asked once per chunk: a closed circuit stays closed for the
    chunk's calls (a failure still counts at once, and reopens the question); a probe or an open
    circuit is asked again call by call, so exactly one call probes."""

    def __init__(self, provider):
        self.breaker = breaker_for(provider)
        self.closed = False
        self.succeeded = False
        self.lock = threading.Lock()

    def allow(self):
        with self.lock:
            if self.closed:
                return True
        answer = self.breaker.answer()
        with self.lock:
            self.closed = answer == CLOSED
        return answer != "open"

    def remaining(self):
        return self.breaker.remaining()

    def record_failure(self):
        with self.lock:
            self.closed = False
        return self.breaker.record_failure()

    def record_success(self):
        with self.lock:
            if self.succeeded:
                return
            self.succeeded = True
        self.breaker.record_success()


@dataclass
class Outcome:
    delivery: Delivery
    message: object = None
    result: SendResult | None = None
    provider: str = ""
    error: Exception | None = None
    attempts: list = field(default_factory=list)


# What a chunk reads of each claimed delivery's notification (joined in by the claim's UPDATE).
NOTIFICATION_FIELDS = ("id", "expires_at", "created_at", "category", "priority")


@functools.cache
def claim_shape():
    """What the claim returns, worked out once per process: the Delivery columns (with the ORM's
    converters of those that have one), then its notification's NOTIFICATION_FIELDS, and the
    RETURNING list that reads them."""
    fields = Delivery._meta.concrete_fields
    # In the model's field order: Model.from_db takes a subset's values in that order.
    related = [f for f in Notification._meta.concrete_fields if f.name in NOTIFICATION_FIELDS]
    converters = [(i, f.from_db_value) for i, f in enumerate(fields) if hasattr(f, "from_db_value")]
    returning = ", ".join([f"d.{connection.ops.quote_name(f.column)}" for f in fields]
                          + [f"n.{connection.ops.quote_name(f.column)}" for f in related])
    return ([f.attname for f in fields], converters, [f.attname for f in related], returning)


def claim(ids, token, resume=None):
    """Claim the `queued` rows among ids (and, for a re-queued message, the `sending` rows its
    earlier run holds) in one UPDATE ... RETURNING, which also brings back each one's
    notification's expiry, creation time, category and priority: the claimed rows, their
    notification cached on them."""
    *_, returning = claim_shape()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {Delivery._meta.db_table} AS d SET status = %s, claim_token = %s, updated_at = now(),
                    attempt_count = d.attempt_count + CASE WHEN d.status = %s THEN 1 ELSE 0 END
                FROM {Notification._meta.db_table} AS n
                WHERE n.id = d.notification_id AND d.id = ANY(%s)
                    AND (d.status = %s OR (d.status = %s AND d.claim_token = %s))
                RETURNING {returning}""",
            [DeliveryStatus.SENDING, token, DeliveryStatus.QUEUED, [uuid.UUID(str(i)) for i in ids],
             DeliveryStatus.QUEUED, DeliveryStatus.SENDING, resume],
        )
        rows = cursor.fetchall()
    return [loaded(row) for row in rows]


def loaded(row):
    """A Delivery (and its notification's few fields) from a row of the claim's RETURNING, its
    columns converted as the ORM converts them (e.g. the sealed message opened)."""
    names, converters, related, _returning = claim_shape()
    values = list(row[:len(names)])
    for i, convert in converters:
        if values[i] is not None:
            values[i] = convert(values[i], None, connection)
    delivery = Delivery.from_db(connection.alias, names, values)
    notification = Notification.from_db(connection.alias, related, row[len(names):])
    Delivery.notification.field.set_cached_value(delivery, notification)
    return delivery


def run(channel, ids, token, resume=None):
    """Deliver one chunk. Returns {"sent": n, "retrying": n, "failed": n, "skipped": n, "waiting": n}."""
    providers = registry.providers_for(channel)
    breakers = {provider.name: ChunkBreaker(provider) for provider in providers}
    usable = [provider for provider in providers if not breakers[provider.name].breaker.is_open()]
    waiting = []
    if usable and not resume:
        # Tokens for the whole chunk in one round trip; the rest go out one by one, booking slots.
        granted = ratelimit.take_many(usable[0].name, len(ids))
        ids, waiting = ids[:granted], ids[granted:]
        if waiting:
            fallback.enqueue_deliveries(list(Delivery.objects.filter(id__in=waiting, status=DeliveryStatus.QUEUED)))
            for _ in waiting:
                signals.rate_limited.send(Delivery, provider=usable[0].name, wait=0.0)
    claimed = claim(ids, token, resume) if ids else []
    now = timezone.now()
    expired = [d for d in claimed if d.notification.expires_at is not None and d.notification.expires_at <= now]
    for row in expired:
        single.skip_expired(row)
    live = [d for d in claimed if d not in expired]
    token_for = usable[0] if usable else None
    outcomes = [Outcome(d) for d in live]
    concurrent = all(provider.concurrent for provider in providers)
    counts = {"sent": 0, "retrying": 0, "failed": 0, "skipped": len(expired), "waiting": len(waiting)}
    if concurrent and len(outcomes) > 1:
        calls = {pool().submit(send_in_thread, outcome, providers, breakers, token_for): outcome
                 for outcome in outcomes}
        # Every NOTIFY_CHUNK_RECORD_WAIT, what has answered is settled at once (recorded, its
        # failures retried or fallen back), so a slow provider call (up to its timeout) holds up
        # only itself, also for the calls that answer after the first wave.
        pending = set(calls)
        while pending:
            done, pending = wait(pending, timeout=settings.NOTIFY_CHUNK_RECORD_WAIT)
            for call in done:
                call.result()  # a bug in a channel module surfaces here, not silently
            if done:
                settle([calls[call] for call in done], providers, counts)
    else:
        for outcome in outcomes:
            send(outcome, providers, breakers, token_for)
        settle(outcomes, providers, counts)
    return counts


def settle(outcomes, providers, counts):
    """Record these outcomes, then hand each failure on: a permanent one to its fallback, a
    transient one to its retry."""
    record(outcomes, providers)
    for outcome in outcomes:
        if outcome.result is not None:
            counts["sent"] += 1
        elif isinstance(outcome.error, PermanentDeliveryError):
            counts["failed"] += 1
            end(outcome)
        else:
            counts["retrying"] += 1
            retry(outcome)


def send_in_thread(*args):
    """send() in a pool thread, whose own database connection (providers may read contact points)
    is dropped first if it broke, e.g. when Postgres restarted since this thread last used it."""
    close_old_connections()
    send(*args)


def send(outcome, providers, breakers, token_for):
    """One delivery's providers in failover order (as delivery.call_providers), its attempts kept
    unsaved on the outcome."""
    row = outcome.delivery
    if not providers:
        outcome.error = PermanentDeliveryError(f"no provider configured for {row.channel}")
        single.record_attempt(row, "", outcome.error, timezone.now(), time.monotonic(), into=outcome.attempts)
        return
    try:
        message = outcome.message = registry.kit(row.channel).message.from_dict(row.message)
    except InvalidMessage as invalid:
        outcome.error = PermanentDeliveryError(f"message does not fit its channel: {invalid}")
        single.record_attempt(row, "", outcome.error, timezone.now(), time.monotonic(), into=outcome.attempts)
        return
    circuit_waits = []
    for provider in providers:
        result, error = single.call_one(row, message, provider, token_for, into=outcome.attempts,
                                        circuit=breakers[provider.name])
        if result is not None:
            outcome.result, outcome.provider, outcome.error = result, provider.name, None
            return
        outcome.error = error
        if isinstance(error, PermanentDeliveryError):
            return
        if isinstance(error, single.CircuitOpen):
            circuit_waits.append(error.retry_after)
    if len(circuit_waits) == len(providers):
        outcome.error = single.CircuitOpen(str(outcome.error), retry_after=min(circuit_waits))


def record(outcomes, providers):
    """Every attempt in one INSERT, every success in one UPDATE, the notifications' status after
    them: one transaction."""
    if not outcomes:
        return
    sent = [outcome for outcome in outcomes if outcome.result is not None]
    with transaction.atomic():
        copy_create([attempt for outcome in outcomes for attempt in outcome.attempts])
        if sent:
            mark_sent(sent)
        transient = [o for o in outcomes if o.result is None and not isinstance(o.error, PermanentDeliveryError)]
        for outcome in transient:
            Delivery.objects.filter(id=outcome.delivery.id).move(
                DeliveryStatus.RETRYING, source=DeliveryStatus.SENDING, last_error=str(outcome.error)
            )
        settle_notifications({outcome.delivery.notification_id for outcome in sent})
    each = len(sent) <= settings.NOTIFY_LOG_EACH_SENT_UP_TO
    for outcome in sent:
        row = outcome.delivery
        if each:
            logger.info("delivery %s %s: %s via %s, attempt %d (notification %s)", row.id, sent_status(outcome),
                        row.channel, outcome.provider, row.attempt_count, row.notification_id)
        latency = (timezone.now() - row.notification.created_at).total_seconds()
        signals.delivery_sent.send(Delivery, channel=row.channel, provider=outcome.provider, latency=latency)
    if not each:
        log_sent_together(sent)
    for provider in providers:
        mine = [(o.delivery.id, o.message) for o in sent if o.provider == provider.name]
        if mine:
            single.after_sent(provider, mine)


def sent_status(outcome):
    return DeliveryStatus.DELIVERED if outcome.result.confirmed else DeliveryStatus.SENT


def log_sent_together(sent):
    """One line for the successes of a large chunk that share a status, channel, provider and
    attempt number, instead of one each: a line costs about 85 us of the worker's CPU, a quarter
    of an in-app delivery's. Each delivery's attempt is in Postgres (DeliveryAttempt), and the
    claim token on the line finds the chunk's rows (Delivery.claim_token)."""
    groups = {}
    for outcome in sent:
        row = outcome.delivery
        groups.setdefault((sent_status(outcome), row.channel, outcome.provider, row.attempt_count), []).append(row)
    for (status, channel, provider, attempt), rows in groups.items():
        logger.info("%d deliveries %s: %s via %s, attempt %d (claim %s)", len(rows), status, channel, provider,
                    attempt, rows[0].claim_token)


def mark_sent(sent):
    """`sent` or `delivered` (as delivery.record_sent) for all of them in one UPDATE from a JSON
    document of the rows (one parameter, not six per row); a row a status callback already moved
    past `sending` only gets the details."""
    table = Delivery._meta.db_table
    rows = json.dumps([
        {"id": str(outcome.delivery.id),
         "status": DeliveryStatus.DELIVERED if outcome.result.confirmed else DeliveryStatus.SENT,
         "provider": outcome.provider[:32], "message_id": outcome.result.provider_message_id[:200],
         "payload": outcome.result.payload, "confirmed": outcome.result.confirmed}
        for outcome in sent
    ], cls=DjangoJSONEncoder)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} AS d SET status = v.status, provider = v.provider,
                    provider_message_id = v.message_id, provider_payload = v.payload, sent_at = now(),
                    delivered_at = CASE WHEN v.confirmed THEN now() ELSE d.delivered_at END,
                    next_retry_at = NULL, last_error = '', updated_at = now()
                FROM jsonb_to_recordset(%s::jsonb)
                    AS v(id uuid, status text, provider text, message_id text, payload jsonb, confirmed boolean)
                WHERE d.id = v.id AND d.status = %s
                RETURNING d.id""",
            [rows, DeliveryStatus.SENDING],
        )
        moved = {row[0] for row in cursor.fetchall()}
    for outcome in sent:
        if outcome.delivery.id not in moved:
            Delivery.objects.filter(id=outcome.delivery.id).note(
                provider=outcome.provider, provider_message_id=outcome.result.provider_message_id,
                provider_payload=outcome.result.payload, sent_at=timezone.now(), next_retry_at=None, last_error="",
            )


def end(outcome):
    """A permanent failure: this delivery fails, and its chain's next channel starts."""
    row = outcome.delivery
    fallback.fail(row.id, f"permanent error: {outcome.error}", str(outcome.error))
    start_successor(row)


def start_successor(row):
    after = fallback.successor(row)
    if after is not None:
        fallback.enqueue_deliveries([after])


def retry(outcome):
    """A transient failure: the per-delivery task takes over as this delivery's first retry, with
    its policy's wait and the rest of its chain as errbacks; as the task would, an open circuit
    on a delivery with a next channel falls back at once."""
    row = outcome.delivery
    error = outcome.error
    if isinstance(error, single.CircuitOpen) and fallback.successor(row) is not None:
        fallback.fail(row.id, f"circuit open, falling back: {error}", str(error))
        start_successor(row)
        return
    wait, _limit = single.decide_retry(row.id, 0, error, context=(row.channel, row.notification.category_id,
                                                          row.notification.priority))
    if wait is None:
        start_successor(row)
        return
    if wait > settings.NOTIFY_MAX_COUNTDOWN:
        return  # parked in Postgres with next_retry_at: the reaper re-enqueues it
    chain = [row, *sorted(fallback.same_route(row).filter(position__gt=row.position, status=DeliveryStatus.PENDING),
                          key=lambda later: later.position)]
    fallback.chain_signature(
        chain, expires=row.notification.expires_at, priority=row.notification.priority
    ).apply_async(retries=1, countdown=wait)

