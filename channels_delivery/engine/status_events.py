"""Status events for sending apps: every status change of an API client's notifications, POSTed
to its status webhook, signed per Standard Webhooks.

The events are rows (StatusEvent) that Postgres triggers write in the transaction of the change
itself. Beat calls enqueue_due() every second: it claims pending rows, and picks up again rows a
killed worker left in `queued`/`sending` or whose retry message was lost, so none is lost. The
task sends one event the way webhooks go out (signed_headers, the outbound guard, no redirects)
and retries by the retry policy NOTIFY_STATUS_EVENT_RETRY_POLICY; one that runs out of tries is
`failed`: the status webhooks' own dead-letter list (API: /api/status-webhooks/dead-letters/).
A re-sent event keeps its webhook-id, so receivers de-duplicate.
"""

import logging
from datetime import timedelta

import requests
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from channels_delivery.engine import backoff
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError, error_for_status
from channels_delivery.engine.netguard import BlockedAddressError, bounded_post
from channels_delivery.engine.standard_webhooks import encode, signed_headers
from notifications.models import StatusEvent, StatusEventStatus, StatusWebhook

logger = logging.getLogger(__name__)
Status = StatusEventStatus


def enqueue_due(limit=None, now=None):
    """Send the task for every event that is due: new ones, retries whose message was lost, and
    ones a dead worker held. Returns how many were enqueued."""
    now = now or timezone.now()
    stuck = now - timedelta(seconds=settings.NOTIFY_STATUS_EVENT_STUCK_AFTER)
    due = (
        Q(status=Status.PENDING)
        | Q(status=Status.RETRYING, next_retry_at__lte=now - timedelta(seconds=settings.NOTIFY_STATUS_EVENT_GRACE))
        | Q(status__in=[Status.QUEUED, Status.SENDING], updated_at__lt=stuck)
    )
    with transaction.atomic():
        ids = list(
            StatusEvent.objects.select_for_update(skip_locked=True).filter(due).order_by("id")
            .values_list("id", flat=True)[: limit or settings.NOTIFY_STATUS_EVENT_BATCH]
        )
        if not ids:
            return 0
        StatusEvent.objects.filter(id__in=ids).update(status=Status.QUEUED, updated_at=now)
        transaction.on_commit(lambda: [send_status_event.delay(event_id) for event_id in ids])
    return len(ids)


def claim(event_id, expected):
    claimed = StatusEvent.objects.filter(id=event_id, status=expected).update(
        status=Status.SENDING, attempt_count=F("attempt_count") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return None
    return StatusEvent.objects.select_related("webhook").get(id=event_id)


def post(event):
    """One POST of the event; None when the receiver took it, else the DeliveryError."""
    webhook = event.webhook
    if not webhook.active:
        return PermanentDeliveryError(f"status webhook {webhook.id} is switched off")
    body = encode(event.payload)
    headers = signed_headers(event.event_id, webhook.secret, body)
    where = f"status webhook {webhook.id}"
    try:
        response, answer = bounded_post(
            webhook.url, data=body.encode(), headers=headers,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT),
            deadline=settings.OUTBOUND_DEADLINE_SECONDS, limit=settings.OUTBOUND_RESPONSE_MAX_BYTES,
        )
        text = answer.decode(errors="replace")
    except BlockedAddressError as error:
        return PermanentDeliveryError(f"{where} refused: {error}")
    except (requests.Timeout, requests.ConnectionError) as error:
        return TransientDeliveryError(f"{where} unreachable ({type(error).__name__})")
    if 200 <= response.status_code < 300:
        return None
    if response.status_code == 410:
        StatusWebhook.objects.filter(id=webhook.id).update(active=False, deactivated_reason="answered 410 Gone")
    if 300 <= response.status_code < 400:
        return PermanentDeliveryError(f"{where} {response.status_code}: redirects are not followed")
    return error_for_status(where, response.status_code, text[:200], response.headers)


@shared_task(name="channels_delivery.send_status_event", acks_late=True, reject_on_worker_lost=True)
def send_status_event(event_id, retry=False):
    event = claim(event_id, Status.RETRYING if retry else Status.QUEUED)
    if event is None:
        return None
    error = post(event)
    now = timezone.now()
    rows = StatusEvent.objects.filter(id=event.id, status=Status.SENDING)
    if error is None:
        rows.update(status=Status.SENT, sent_at=now, updated_at=now, next_retry_at=None, last_error="")
        return "sent"
    policy = backoff.named(settings.NOTIFY_STATUS_EVENT_RETRY_POLICY)
    if isinstance(error, PermanentDeliveryError) or event.attempt_count >= policy.max_attempts:
        rows.update(status=Status.FAILED, updated_at=now, next_retry_at=None, last_error=str(error)[:2000],
                    retry_policy=policy.describe())
        logger.warning("status event %s failed for good after %s attempts: %s", event.id, event.attempt_count, error)
        return "failed"
    wait = policy.wait(event.attempt_count - 1, retry_after=error.retry_after)
    rows.update(status=Status.RETRYING, updated_at=now, next_retry_at=now + timedelta(seconds=wait),
                last_error=str(error)[:2000], retry_policy=policy.describe())
    if wait <= settings.NOTIFY_MAX_COUNTDOWN:  # longer waits: enqueue_due() picks it up when due
        send_status_event.apply_async((event.id,), {"retry": True}, countdown=wait)
    return f"retry in {wait:.2f}s"


def redrive(event_id):
    """Queue a dead-lettered event again with a fresh count of tries; False when it is not failed."""
    with transaction.atomic():
        moved = StatusEvent.objects.filter(id=event_id, status=Status.FAILED).update(
            status=Status.QUEUED, attempt_count=0, next_retry_at=None, updated_at=timezone.now()
        )
        if moved:
            transaction.on_commit(lambda: send_status_event.delay(event_id))
    return bool(moved)
