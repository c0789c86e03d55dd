"""One try of one Delivery: claim it, call its channel's providers in failover order, record it.

Returns the provider's result, None when there was nothing to do, or raises:
- RateLimited before anything was claimed or counted (the task re-queues itself);
- TransientDeliveryError (CircuitOpen when every provider's circuit is open), with the row in
  `retrying`; the task decides between a retry and the end of the line;
- PermanentDeliveryError, with the row already `failed` and its reason (so that the errback,
  which Celery sends before on_failure, finds it failed); the chain moves on.
"""

import logging
import time
import uuid

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from channels_delivery import registry
from channels_delivery.engine import backoff, fallback, ratelimit, signals
from channels_delivery.engine.base import InvalidMessage, SendResult
from channels_delivery.engine.circuit import breaker_for
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from channels_delivery.registry import providers_for
from notifications.models import (
    AttemptOutcome,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    clip_fields,
    settle_notifications,
)

logger = logging.getLogger(__name__)


class RateLimited(Exception):
    def __init__(self, provider, wait):
        super().__init__(f"{provider} over its rate limit, slot booked in {wait:.2f}s")
        self.provider, self.wait = provider, wait


class CircuitOpen(TransientDeliveryError):
    """No provider of the channel may be called now."""


def claim(delivery_id, expected, token, resume=None):
    """Move a delivery from `expected` to `sending` under this run's claim token; returns it, or
    None if someone else has it.

    A first message claims `queued` rows, a retry claims `retrying` rows: so a duplicate of a
    first message cannot jump the queue of a delivery that is already waiting for its retry.
    resume: the token of an earlier run of this same message, which lost its database connection
    around its claim and re-queued the message; its `sending` row is taken over without counting
    another attempt, instead of waiting for the reaper.
    """
    rows = Delivery.objects.filter(id=delivery_id)
    claimed = rows.move(
        DeliveryStatus.SENDING, source=expected, attempt_count=F("attempt_count") + 1, claim_token=token
    )
    if not claimed and resume:
        claimed = rows.filter(status=DeliveryStatus.SENDING, claim_token=resume).note(claim_token=token)
    if not claimed:
        return None
    return Delivery.objects.select_related("notification").only(
        *(f.name for f in Delivery._meta.concrete_fields), "notification__expires_at", "notification__created_at"
    ).get(id=delivery_id)


def attempt(delivery_id, *, retry=False, token=None, resume=None):
    """token: this run's claim token; resume: the token of the run that re-queued this message."""
    expected = DeliveryStatus.RETRYING if retry else DeliveryStatus.QUEUED
    row = Delivery.objects.filter(id=delivery_id).values("status", "channel", "notification__expires_at").first()
    if row is None:
        return None
    if row["status"] == DeliveryStatus.PENDING and not retry:
        # Run as the errback of the channel before it: start only if that one really failed.
        if not fallback.activate(delivery_id):
            return None
    elif row["status"] != expected and not (resume and row["status"] == DeliveryStatus.SENDING):
        logger.info("delivery %s is %s, not %s: nothing to do", delivery_id, row["status"], expected)
        return None

    providers = providers_for(row["channel"])
    usable = [provider for provider in providers if not breaker_for(provider).is_open()]
    if usable:
        # Waiting for a token is not an attempt: nothing is claimed or counted yet.
        wait = ratelimit.take(usable[0].name, delivery_id)
        if wait:
            raise RateLimited(usable[0].name, wait)

    delivery = claim(delivery_id, expected, token or uuid.uuid4(), resume)
    if delivery is None:
        logger.info("delivery %s already claimed by another task", delivery_id)
        return None
    expires_at = row["notification__expires_at"]
    if expires_at is not None and expires_at <= timezone.now():
        skip_expired(delivery)
        return None
    if not providers:
        error = PermanentDeliveryError(f"no provider configured for {delivery.channel}")
        record_attempt(delivery, "", error, timezone.now(), time.monotonic())
        fallback.fail(delivery.id, f"permanent error: {error}", str(error))
        raise error
    try:
        message = registry.kit(delivery.channel).message.from_dict(delivery.message)
    except InvalidMessage as invalid:
        error = PermanentDeliveryError(f"message does not fit its channel: {invalid}")
        record_attempt(delivery, "", error, timezone.now(), time.monotonic())
        fallback.fail(delivery.id, f"permanent error: {error}", str(error))
        raise error from invalid
    return call_providers(delivery, message, providers, token_for=usable[0] if usable else None)


def call_providers(delivery, message, providers, token_for):
    """Providers in failover order: the next one is called only when the one before failed
    transiently; a permanent answer ends the delivery. A side-by-side channel differs."""
    if registry.kit(delivery.channel).side_by_side:
        return call_side_by_side(delivery, message, providers, token_for)
    last_error = None
    circuit_waits = []
    for provider in providers:
        result, error = call_one(delivery, message, provider, token_for)
        if result is not None:
            record_sent(delivery, provider.name, result)
            after_sent(provider, [(delivery.id, message)])
            return result
        if isinstance(error, PermanentDeliveryError):
            fallback.fail(delivery.id, f"permanent error: {error}", str(error))
            raise error
        if isinstance(error, CircuitOpen):
            circuit_waits.append(error.retry_after)
        last_error = error
    if len(circuit_waits) == len(providers):
        last_error = CircuitOpen(str(last_error), retry_after=min(circuit_waits))
    retry_later(delivery, last_error)


def call_side_by_side(delivery, message, providers, token_for):
    """Providers that reach different contact points (browsers through Web Push, phones through
    FCM or APNs): each one with targets in the message is called, and the delivery is sent when
    any one got it out; otherwise it retries if any failure was transient, else fails."""
    providers = [provider for provider in providers if provider.has_targets(message)]
    if not providers:
        error = PermanentDeliveryError(f"{delivery.channel}: no active contact point left")
        record_attempt(delivery, "", error, timezone.now(), time.monotonic())
        fallback.fail(delivery.id, f"permanent error: {error}", str(error))
        raise error
    sent, errors = [], []
    for provider in providers:
        result, error = call_one(delivery, message, provider, token_for)
        if result is not None:
            sent.append((provider.name, result))
        else:
            errors.append(error)
    if sent:
        names = "+".join(name for name, _ in sent)
        combined = SendResult(
            provider_message_id=sent[0][1].provider_message_id, status_code=sent[0][1].status_code,
            payload={name: result.payload for name, result in sent} if len(sent) > 1 else sent[0][1].payload,
        )
        record_sent(delivery, names, combined)
        for provider in providers:
            if provider.name in names.split("+"):
                after_sent(provider, [(delivery.id, message)])
        return combined
    transient = [error for error in errors if isinstance(error, TransientDeliveryError)]
    if not transient:
        fallback.fail(delivery.id, f"permanent error: {errors[0]}", str(errors[0]))
        raise errors[0]
    retry_later(delivery, transient[0])


def call_one(delivery, message, provider, token_for, into=None, circuit=None):
    """One provider's try, recorded as an attempt: (result, None) or (None, the error).
    into: a list that collects the attempts unsaved, for a chunk that writes them all at once;
    circuit: the breaker to ask (a chunk's, asked once per chunk), else the provider's."""
    circuit = circuit or breaker_for(provider)
    started, started_at = time.monotonic(), timezone.now()
    if not circuit.allow():
        # The provider is known to be down: fail over without calling it.
        error = CircuitOpen(f"{provider.name}: circuit open, not called", retry_after=circuit.remaining())
        record_attempt(delivery, provider.name, error, started_at, started, into=into)
        return None, error
    if provider is not token_for and ratelimit.take(provider.name, delivery.id, reserve=False):
        error = TransientDeliveryError(f"{provider.name}: over its rate limit, not called")
        record_attempt(delivery, provider.name, error, started_at, started, into=into)
        return None, error
    try:
        result = provider.send(delivery.id, message)
    except TransientDeliveryError as error:
        # The provider is in trouble, not the message: the next provider may still get it out.
        circuit.record_failure()
        record_attempt(delivery, provider.name, error, started_at, started, into=into)
        return None, error
    except PermanentDeliveryError as error:
        circuit.record_success()  # it answered; the message is what is wrong
        record_attempt(delivery, provider.name, error, started_at, started, into=into)
        return None, error
    except (OperationalError, InterfaceError):
        raise  # our database, not the provider: the task re-queues the message
    except Exception as error:
        # A bug or an unclassified failure in a channel module. Not retried (the provider may
        # have accepted the message), but recorded, so the chain moves on instead of stalling.
        logger.exception("delivery %s: unexpected error from %s", delivery.id, provider.name)
        failure = PermanentDeliveryError(f"{provider.name}: unexpected {type(error).__name__}: {error}")
        record_attempt(delivery, provider.name, failure, started_at, started, into=into)
        return None, failure
    circuit.record_success()
    record_attempt(delivery, provider.name, None, started_at, started, result.status_code, into=into)
    return result, None


def after_sent(provider, sent):
    """The provider's follow-up on what it sent, once recorded; a failure there is logged, never
    the delivery's (it went out)."""
    try:
        provider.after_sent(sent)
    except Exception:
        logger.exception("%s: follow-up after sending %d deliveries failed", provider.name, len(sent))


def retry_later(delivery, error):
    Delivery.objects.filter(id=delivery.id).move(
        DeliveryStatus.RETRYING, source=DeliveryStatus.SENDING, last_error=str(error)
    )
    raise error


def skip_expired(delivery):
    """A notification past its expires_at is not sent any more, by any channel of its chain."""
    DeliveryAttempt.objects.create(
        delivery=delivery, number=delivery.attempt_count, outcome=AttemptOutcome.SKIPPED, note="expired"
    )
    Delivery.objects.filter(id=delivery.id).move(
        DeliveryStatus.SKIPPED, source=DeliveryStatus.SENDING, reason="expired", next_retry_at=None
    )
    settle_notifications([delivery.notification_id])


def record_attempt(delivery, provider_name, error, started_at, started, status_code="", into=None):
    if error is None:
        outcome = AttemptOutcome.SENT
    elif isinstance(error, TransientDeliveryError):
        outcome = AttemptOutcome.TRANSIENT_ERROR
    else:
        outcome = AttemptOutcome.PERMANENT_ERROR
    first_of_fallback = delivery.attempt_count == 1 and delivery.reason.startswith("fallback from")
    duration = time.monotonic() - started
    signals.attempt_recorded.send(
        DeliveryAttempt, channel=delivery.channel, provider=provider_name, outcome=outcome, duration=duration
    )
    attempt = DeliveryAttempt(**clip_fields(DeliveryAttempt, dict(
        delivery=delivery,
        number=delivery.attempt_count,
        provider=provider_name,
        started_at=started_at,
        duration_ms=int(duration * 1000),
        outcome=outcome,
        error=str(error or ""),
        provider_status_code=str(getattr(error, "status_code", None) or status_code or ""),
        note=delivery.reason if first_of_fallback else "",
    )))
    if into is not None:
        into.append(attempt)
    else:
        attempt.save(force_insert=True)
    return attempt


def record_sent(delivery, provider_name, result):
    """`sent` (a provider accepted it), or `delivered` when the provider's answer is already the
    confirmation (the in-app inbox); the notification's status follows in the same transaction."""
    now = timezone.now()
    fields = dict(
        provider=provider_name,
        provider_message_id=result.provider_message_id,
        provider_payload=result.payload,
        sent_at=now,
        next_retry_at=None,
        last_error="",
    )
    if result.confirmed:
        fields["delivered_at"] = now
    rows = Delivery.objects.filter(id=delivery.id)
    with transaction.atomic():
        status = DeliveryStatus.DELIVERED if result.confirmed else DeliveryStatus.SENT
        # A status callback may already have moved it past `sent`; keep what the provider said.
        if not rows.move(status, source=DeliveryStatus.SENDING, **fields):
            rows.note(**fields)
        settle_notifications([delivery.notification_id])
    logger.info("delivery %s %s: %s via %s, attempt %d (notification %s)", delivery.id, status, delivery.channel,
                provider_name, delivery.attempt_count, delivery.notification_id)
    latency = (now - delivery.notification.created_at).total_seconds()
    signals.delivery_sent.send(Delivery, channel=delivery.channel, provider=provider_name, latency=latency)


def retry_context(delivery_id):
    """(channel, category, priority) of a delivery: what its retry policy is chosen by."""
    return Delivery.objects.filter(id=delivery_id).values_list(
        "channel", "notification__category_id", "notification__priority"
    ).first() or ("", None, None)


def decide_retry(delivery_id, retries, error, context=None, max_retries=None):
    """After a transient failure with `retries` retries spent: (the wait before the next try, the
    retry limit), by the delivery's retry policy (channel, category, priority; context: those
    three when the caller holds them), the wait written to the row and its last attempt. The wait
    is None when no retry is left: the delivery then failed (its chain's next channel is the
    caller's to start)."""
    channel, category, priority = context or retry_context(delivery_id)
    policy, chosen_by = backoff.policy_for(channel, category, priority)
    limit = policy.max_retries if max_retries is None else max_retries
    named = f"{policy.describe()} (by {chosen_by})"
    if retries >= limit:
        schedule_retry(delivery_id, None, None, named)  # no wait: none left
        fallback.fail(delivery_id, f"retries exhausted ({retries + 1} attempts): {error}", str(error))
        return None, limit
    wait = policy.wait(retries, retry_after=getattr(error, "retry_after", None))
    schedule_retry(delivery_id, wait, f"retry {retries + 1} in {wait:.2f}s", named)
    logger.info("delivery %s retried: retry %d of %d in %.1fs (%s) after %s", delivery_id, retries + 1, limit, wait,
                policy.name, error)
    signals.retry_scheduled.send(Delivery, channel=channel, wait=wait)
    return wait, limit


def schedule_retry(delivery_id, countdown, note, policy=""):
    """Record when the retry will run (countdown None: no retry left), on the row and on the
    attempt that caused it, with the retry policy that decided it."""
    if countdown is not None:
        Delivery.objects.filter(id=delivery_id, status=DeliveryStatus.RETRYING).note(
            next_retry_at=timezone.now() + timezone.timedelta(seconds=countdown)
        )
    last = DeliveryAttempt.objects.filter(delivery_id=delivery_id).order_by("-started_at", "-id").first()
    if last is not None:
        fields = {"retry_policy": policy, "retry_wait_seconds": countdown}
        if note is not None:
            fields["note"] = note
        DeliveryAttempt.objects.filter(id=last.id).update(**clip_fields(DeliveryAttempt, fields))
