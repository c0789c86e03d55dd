"""One Celery task per channel queue. The task only routes; delivery.py does the work.

`autoretry_for` decides *that* a transient error (TransientDeliveryError) is retried;
`dont_autoretry_for` keeps permanent ones (PermanentDeliveryError) from
ever being retried. *When* and *how often* are decided in retry(), which Celery's autoretry calls,
by the delivery's retry policy (backoff.policy_for: channel, category, priority), honouring a
provider's Retry-After; the wait stays below the broker's visibility timeout (longer waits are parked in Postgres for the reaper) and is written to the row first.
The row is marked failed before the exception leaves the task, because Celery sends the
`link_error` errback (the next channel of the chain) before it calls on_failure.
"""

import logging
import uuid

from celery import shared_task
from celery.exceptions import Ignore
from django.conf import settings
from django.db import InterfaceError, OperationalError

from channels_delivery import registry
from channels_delivery.engine import chunks, delivery, fallback, signals
from channels_delivery.engine.delivery import CircuitOpen, RateLimited
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from channels_delivery.engine.poison import PoisonGuardedTask
from notifications.models import Delivery, DeliveryStatus
from channels_delivery.engine.status_events import send_status_event  # noqa: F401  (registers the task)

logger = logging.getLogger(__name__)
DATABASE_ERRORS = (OperationalError, InterfaceError)


class DeliveryTask(PoisonGuardedTask):
    autoretry_for = (TransientDeliveryError,)
    dont_autoretry_for = (PermanentDeliveryError,)
    # Expected outcomes, each already logged in one line ("failed", "retried"): Celery logs them
    # without a traceback, at INFO, under CELERY_ROUTINE_LOG_LEVEL.
    throws = (TransientDeliveryError, PermanentDeliveryError)
    acks_late = True
    reject_on_worker_lost = True

    def run_delivery(self, delivery_id, resume=None):
        token = uuid.uuid4()
        try:
            result = delivery.attempt(delivery_id, retry=self.request.retries > 0, token=token, resume=resume)
        except RateLimited as limited:
            self.requeue(limited.wait)
            signals.rate_limited.send(DeliveryTask, provider=limited.provider, wait=limited.wait)
            logger.info("delivery %s: %s; re-queued, not counted as an attempt", delivery_id, limited)
            return "rate limited"
        except CircuitOpen as error:
            if not fallback.successor_exists(delivery_id):
                raise  # the last channel of its chain waits for the circuit (autoretry)
            fallback.fail(delivery_id, f"circuit open, falling back: {error}", str(error))
            raise PermanentDeliveryError(f"circuit open, falling back: {error}") from error
        except PermanentDeliveryError:
            raise  # attempt() has marked the row failed with its reason
        except DATABASE_ERRORS as error:
            # Postgres restarting is not the delivery's fault: try the same message again later,
            # never a dead letter. The claim may have committed as the connection dropped: the
            # message carries this run's token, so its next run resumes that claim at once.
            logger.warning("delivery %s: database unavailable (%s); re-queued", delivery_id, error)
            self.requeue(settings.NOTIFY_DATABASE_RETRY_SECONDS, resume=str(token))
            return "database unavailable"
        return result.provider_message_id if result else None

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, max_retries=None,
              **options):
        if not isinstance(exc, TransientDeliveryError):
            return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)
        delivery_id = self.request.args[0]
        wait, limit = delivery.decide_retry(delivery_id, self.request.retries, exc, max_retries=max_retries)
        if wait is None:
            raise exc  # failed: Celery sends the chain's next channel (link_error)
        if wait > settings.NOTIFY_MAX_COUNTDOWN:
            # Too long for a broker countdown (it would run twice after the visibility timeout):
            # the row waits in Postgres with next_retry_at and the reaper re-enqueues it.
            logger.info("delivery %s parked for %.0fs until next_retry_at", delivery_id, wait)
            raise Ignore()
        return super().retry(exc=exc, countdown=wait, max_retries=limit, throw=throw)

    def park(self, delivery_id, deaths, **_kwargs):
        """A message that killed its worker too often: the delivery fails for good with the reason
        (a dead letter, re-drivable), and the chain moves on to its next channel."""
        reason = f"poison message: its worker died {deaths} times running it; parked"
        fallback.fail(delivery_id, reason, reason)
        raise PermanentDeliveryError(reason)

    def requeue(self, countdown, **kwargs):
        """Run this same message again later without spending one of its retries (kwargs: what
        the next run should know, e.g. the claim it may resume)."""
        countdown = min(countdown, settings.NOTIFY_MAX_COUNTDOWN)
        self.signature_from_request(
            kwargs={**(self.request.kwargs or {}), **kwargs}, countdown=countdown, retries=self.request.retries
        ).apply_async()


def make_delivery_task(entry):
    # One positional argument only: Celery calls an errback whose task takes more than one
    # argument inline with (request, exc, traceback) instead of sending it as a message.
    @shared_task(
        bind=True,
        base=DeliveryTask,
        name=entry.task_name,
    )
    def deliver(self, delivery_id, *, resume=None):
        return self.run_delivery(delivery_id, resume)

    return deliver


class ChunkTask(PoisonGuardedTask):
    """A chunk of first tries (engine/chunks.py). Everything that can go wrong with one delivery
    is handled inside, per delivery; what is left is the database going away, which re-queues
    the chunk with this run's claim token so the next run resumes its claims."""

    acks_late = True
    reject_on_worker_lost = True

    def run_chunk(self, channel, delivery_ids, resume=None):
        token = uuid.uuid4()
        try:
            return chunks.run(channel, delivery_ids, token, resume)
        except DATABASE_ERRORS as error:
            logger.warning("chunk of %d %s deliveries: database unavailable (%s); re-queued", len(delivery_ids),
                           channel, error)
            self.signature_from_request(
                kwargs={"resume": str(token)}, countdown=settings.NOTIFY_DATABASE_RETRY_SECONDS
            ).apply_async()
            return "database unavailable"

    def park(self, delivery_ids, deaths, **_kwargs):
        """A chunk that killed its worker too often: its deliveries go out one message each, so
        the one at fault is parked alone by its own task's poison guard."""
        logger.error("chunk of %d deliveries killed its worker %d times: sent one by one", len(delivery_ids), deaths)
        fallback.enqueue_deliveries(list(Delivery.objects.filter(id__in=delivery_ids, status=DeliveryStatus.QUEUED)))
        return "split"


def make_chunk_task(entry):
    @shared_task(bind=True, base=ChunkTask, name=entry.chunk_task_name)
    def deliver_chunk(self, delivery_ids, *, resume=None):
        return self.run_chunk(entry.name, delivery_ids, resume)

    return deliver_chunk


DELIVERY_TASKS = {entry.name: make_delivery_task(entry) for entry in registry.CHANNELS}
CHUNK_TASKS = {entry.name: make_chunk_task(entry) for entry in registry.CHANNELS}
