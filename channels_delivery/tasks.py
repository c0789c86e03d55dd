"""One Celery task per channel queue; each retries transient errors with backoff and jitter."""

import logging

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import delivery
from .errors import PermanentDeliveryError, TransientDeliveryError

logger = logging.getLogger(__name__)
# Postgres restarting or dropping connections is not the delivery's fault: retry, never a dead letter.
DATABASE_ERRORS = (OperationalError, InterfaceError)


class DeliveryTask(Task):
    autoretry_for = (TransientDeliveryError, *DATABASE_ERRORS)
    dont_autoretry_for = (PermanentDeliveryError,)
    retry_backoff = 2
    retry_jitter = True
    acks_late = True
    reject_on_worker_lost = True

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, DATABASE_ERRORS):
            return
        countdown = getattr(einfo.exception, "when", None)
        if isinstance(countdown, (int, float)):
            delivery.schedule_retry(args[0], countdown)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, DATABASE_ERRORS):
            # The row is still queued or sending; the reaper picks it up once Postgres is back.
            logger.warning("delivery %s left for the reaper after a database error: %s", args[0], exc)
            return
        reason = "retries exhausted" if isinstance(exc, TransientDeliveryError) else "permanent error"
        delivery.mark_failed(args[0], f"{reason}: {exc}")


def make_delivery_task(channel):
    retry = settings.NOTIFY_RETRY[channel]

    @shared_task(
        base=DeliveryTask,
        name=f"channels_delivery.deliver_{channel}",
        max_retries=retry["max_retries"],
        retry_backoff_max=retry["backoff_max"],
    )
    def deliver(delivery_id):
        result = delivery.attempt(delivery_id)
        return result.provider_message_id if result else None

    return deliver


DELIVERY_TASKS = {channel: make_delivery_task(channel) for channel in settings.NOTIFY_CHANNELS}
deliver_email = DELIVERY_TASKS["email"]
deliver_inapp = DELIVERY_TASKS["inapp"]
