"""One Celery task per channel queue. The task only routes; delivery.py does the work.

Retries are explicit rather than `autoretry_for`: the wait must honour a provider's Retry-After,
stay below the broker's visibility timeout, and be written to the row before the task raises.
Transient errors (TransientDeliveryError) are retried with backoff and jitter up to the
channel's max_retries; permanent ones (PermanentDeliveryError) are never retried. Either way the
row is marked failed before the exception leaves the task, because Celery sends the
`link_error` errback (the next channel of the chain) before it calls on_failure.
"""

import logging

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import backoff, delivery, fallback
from .delivery import CircuitOpen, RateLimited
from .errors import PermanentDeliveryError, TransientDeliveryError

logger = logging.getLogger(__name__)
DATABASE_ERRORS = (OperationalError, InterfaceError)


class DeliveryTask(Task):
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
            if fallback.successor_exists(delivery_id):
                fallback.fail(delivery_id, f"circuit open, falling back: {error}", str(error))
                raise
            return self.retry_or_fail(delivery_id, error)
        except TransientDeliveryError as error:
            return self.retry_or_fail(delivery_id, error)
        except PermanentDeliveryError:
            raise  # attempt() has marked the row failed with its reason
        except DATABASE_ERRORS as error:
            # Postgres restarting is not the delivery's fault: try the same message again later,
            # never a dead letter (a row left in `sending` is the reaper's).
            logger.warning("delivery %s: database unavailable (%s); re-queued", delivery_id, error)
            self.requeue(settings.NOTIFY_DATABASE_RETRY_SECONDS)
            return "database unavailable"
        return result.provider_message_id if result else None

    def retry_or_fail(self, delivery_id, error):
        retries = self.request.retries
        if retries >= self.max_retries:
            fallback.fail(delivery_id, f"retries exhausted ({retries + 1} attempts): {error}", str(error))
            raise error
        wait = backoff.countdown(
            retries,
            factor=self.retry_backoff,
            maximum=self.retry_backoff_max,
            jitter=self.retry_jitter,
            retry_after=error.retry_after,
        )
        delivery.schedule_retry(delivery_id, wait, f"retry {retries + 1} in {wait:.2f}s")
        if wait > settings.NOTIFY_MAX_COUNTDOWN:
            # Too long for a broker countdown (it would run twice after the visibility timeout):
            # the row waits in Postgres with next_retry_at and the reaper re-enqueues it.
            logger.info("delivery %s parked for %.0fs until next_retry_at", delivery_id, wait)
            return "parked"
        raise self.retry(exc=error, countdown=wait)

    def requeue(self, countdown):
        """Run this same message again later without spending one of its retries."""
        countdown = min(countdown, settings.NOTIFY_MAX_COUNTDOWN)
        self.signature_from_request(countdown=countdown, retries=self.request.retries).apply_async()


def make_delivery_task(channel):
    retry = settings.NOTIFY_RETRY[channel]

    # One positional argument only: Celery calls an errback whose task takes more than one
    # argument inline with (request, exc, traceback) instead of sending it as a message.
    @shared_task(
        bind=True,
        base=DeliveryTask,
        name=f"channels_delivery.deliver_{channel}",
        max_retries=retry["max_retries"],
        retry_backoff_max=min(retry["backoff_max"], settings.NOTIFY_MAX_COUNTDOWN),
    )
    def deliver(self, delivery_id):
        return self.run_delivery(delivery_id)

    return deliver


DELIVERY_TASKS = {channel: make_delivery_task(channel) for channel in settings.NOTIFY_CHANNELS}
deliver_email = DELIVERY_TASKS["email"]
deliver_sms = DELIVERY_TASKS["sms"]
deliver_push = DELIVERY_TASKS["push"]
deliver_webhook = DELIVERY_TASKS["webhook"]
deliver_slack = DELIVERY_TASKS["slack"]
deliver_inapp = DELIVERY_TASKS["inapp"]
