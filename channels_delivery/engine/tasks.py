"""One Celery task per channel queue. The task only routes; delivery.py does the work.

`autoretry_for` decides *that* a transient error (TransientDeliveryError) is retried, up to the
channel's max_retries; `dont_autoretry_for` keeps permanent ones (PermanentDeliveryError) from
ever being retried. *When* is decided in retry(), which Celery's autoretry calls: exponential
backoff with jitter that honours a provider's Retry-After, stays below the broker's visibility
timeout (longer waits are parked in Postgres for the reaper) and is written to the row first.
The row is marked failed before the exception leaves the task, because Celery sends the
`link_error` errback (the next channel of the chain) before it calls on_failure.
"""

import logging

from celery import Task, shared_task
from celery.exceptions import Ignore
from django.conf import settings
from django.db import InterfaceError, OperationalError

from channels_delivery import registry
from channels_delivery.engine import backoff, delivery, fallback
from channels_delivery.engine.delivery import CircuitOpen, RateLimited
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError

logger = logging.getLogger(__name__)
DATABASE_ERRORS = (OperationalError, InterfaceError)


class DeliveryTask(Task):
    autoretry_for = (TransientDeliveryError,)
    dont_autoretry_for = (PermanentDeliveryError,)
    # Expected outcomes, each already logged in one line ("failed", "retried"): Celery logs them
    # without a traceback, at INFO, under CELERY_ROUTINE_LOG_LEVEL.
    throws = (TransientDeliveryError, PermanentDeliveryError)
    acks_late = True
    reject_on_worker_lost = True
    retry_backoff = settings.NOTIFY_RETRY_BACKOFF
    retry_jitter = settings.NOTIFY_RETRY_JITTER
    retry_backoff_max = 600

    def run_delivery(self, delivery_id):
        try:
            result = delivery.attempt(delivery_id, retry=self.request.retries > 0)
        except RateLimited as limited:
            self.requeue(limited.wait)
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
            # never a dead letter (a row left in `sending` is the reaper's).
            logger.warning("delivery %s: database unavailable (%s); re-queued", delivery_id, error)
            self.requeue(settings.NOTIFY_DATABASE_RETRY_SECONDS)
            return "database unavailable"
        return result.provider_message_id if result else None

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, max_retries=None,
              **options):
        if not isinstance(exc, TransientDeliveryError):
            return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)
        delivery_id = self.request.args[0]
        retries = self.request.retries
        limit = self.max_retries if max_retries is None else max_retries
        if retries >= limit:
            fallback.fail(delivery_id, f"retries exhausted ({retries + 1} attempts): {exc}", str(exc))
            raise exc
        wait = backoff.countdown(
            retries,
            factor=self.retry_backoff,
            maximum=self.retry_backoff_max,
            jitter=self.retry_jitter,
            retry_after=exc.retry_after,
        )
        delivery.schedule_retry(delivery_id, wait, f"retry {retries + 1} in {wait:.2f}s")
        logger.info("delivery %s retried: retry %d of %d in %.1fs after %s", delivery_id, retries + 1, limit, wait,
                    exc)
        if wait > settings.NOTIFY_MAX_COUNTDOWN:
            # Too long for a broker countdown (it would run twice after the visibility timeout):
            # the row waits in Postgres with next_retry_at and the reaper re-enqueues it.
            logger.info("delivery %s parked for %.0fs until next_retry_at", delivery_id, wait)
            raise Ignore()
        return super().retry(exc=exc, countdown=wait, max_retries=limit, throw=throw)

    def requeue(self, countdown):
        """Run this same message again later without spending one of its retries."""
        countdown = min(countdown, settings.NOTIFY_MAX_COUNTDOWN)
        self.signature_from_request(countdown=countdown, retries=self.request.retries).apply_async()


def make_delivery_task(entry):
    retry = settings.NOTIFY_RETRY[entry.name]

    # One positional argument only: Celery calls an errback whose task takes more than one
    # argument inline with (request, exc, traceback) instead of sending it as a message.
    @shared_task(
        bind=True,
        base=DeliveryTask,
        name=entry.task_name,
        max_retries=retry["max_retries"],
        retry_backoff_max=min(retry["backoff_max"], settings.NOTIFY_MAX_COUNTDOWN),
    )
    def deliver(self, delivery_id):
        return self.run_delivery(delivery_id)

    return deliver


DELIVERY_TASKS = {entry.name: make_delivery_task(entry) for entry in registry.CHANNELS}
