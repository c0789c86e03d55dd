"""One try of one Delivery: claim it, call the provider, record the outcome."""

import logging
import time

from django.db.models import F
from django.utils import timezone

from notifications.models import (
    AttemptOutcome,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)

from .errors import PermanentDeliveryError, TransientDeliveryError
from .registry import providers_for

logger = logging.getLogger(__name__)

CLAIMABLE = [DeliveryStatus.QUEUED, DeliveryStatus.RETRYING]


def claim(delivery_id):
    """Move a delivery to `sending` unless another task already has it; returns it or None."""
    claimed = Delivery.objects.filter(id=delivery_id, status__in=CLAIMABLE).update(
        status=DeliveryStatus.SENDING, attempt_count=F("attempt_count") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return None
    return Delivery.objects.select_related("notification").only(
        *(f.name for f in Delivery._meta.concrete_fields), "notification__expires_at"
    ).get(id=delivery_id)


def attempt(delivery_id):
    """Try a delivery once through its channel's providers, in failover order.

    Returns the provider's result, None when there was nothing to do, or raises a DeliveryError.
    """
    delivery = claim(delivery_id)
    if delivery is None:
        logger.info("delivery %s not claimable, skipping", delivery_id)
        return None
    if expired(delivery):
        return None
    providers = providers_for(delivery.channel)
    if not providers:
        error = PermanentDeliveryError(f"no provider configured for {delivery.channel}")
        record_failure(delivery, "", error, 0, final=True)
        raise error
    last_error = None
    for provider in providers:
        started = time.monotonic()
        started_at = timezone.now()
        try:
            result = provider.send(delivery.id, delivery.message)
        except TransientDeliveryError as error:
            # The provider is in trouble, not the message: the next provider may still get it out.
            record_attempt(delivery, provider.name, error, started_at, started)
            last_error = error
            continue
        except PermanentDeliveryError as error:
            record_attempt(delivery, provider.name, error, started_at, started)
            mark(delivery, DeliveryStatus.FAILED, str(error))
            raise
        record_attempt(delivery, provider.name, None, started_at, started, result.status_code)
        record_sent(delivery, provider.name, result)
        return result
    transient = isinstance(last_error, TransientDeliveryError)
    mark(delivery, DeliveryStatus.RETRYING if transient else DeliveryStatus.FAILED, str(last_error))
    raise last_error


def expired(delivery):
    """A notification past its expires_at is not sent any more: skipped with reason "expired"."""
    now = timezone.now()
    expires_at = delivery.notification.expires_at  # fetched with the claimed row
    if expires_at is None or expires_at > now:
        return False
    DeliveryAttempt.objects.create(
        delivery=delivery, number=delivery.attempt_count, outcome=AttemptOutcome.SKIPPED, note="expired"
    )
    Delivery.objects.filter(id=delivery.id).update(
        status=DeliveryStatus.SKIPPED, reason="expired", next_retry_at=None, updated_at=now
    )
    return True


def record_attempt(delivery, provider_name, error, started_at, started, status_code=""):
    if error is None:
        outcome = AttemptOutcome.SENT
    elif isinstance(error, TransientDeliveryError):
        outcome = AttemptOutcome.TRANSIENT_ERROR
    else:
        outcome = AttemptOutcome.PERMANENT_ERROR
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempt_count,
        provider=provider_name,
        started_at=started_at,
        duration_ms=int((time.monotonic() - started) * 1000),
        outcome=outcome,
        error=str(error or "")[:2000],
        provider_status_code=str(getattr(error, "status_code", None) or status_code or ""),
    )


def record_failure(delivery, provider_name, error, duration_ms, final):
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempt_count,
        provider=provider_name,
        duration_ms=duration_ms,
        outcome=AttemptOutcome.PERMANENT_ERROR,
        error=str(error)[:2000],
    )
    mark(delivery, DeliveryStatus.FAILED, str(error))


def record_sent(delivery, provider_name, result):
    now = timezone.now()
    Delivery.objects.filter(id=delivery.id).update(
        status=DeliveryStatus.SENT,
        provider=provider_name,
        provider_message_id=result.provider_message_id[:200],
        provider_payload=result.payload,
        sent_at=now,
        next_retry_at=None,
        last_error="",
        updated_at=now,
    )
    Notification.objects.filter(id=delivery.notification_id).exclude(
        status__in=[NotificationStatus.DELIVERED, NotificationStatus.CANCELLED]
    ).update(status=NotificationStatus.DELIVERED)


def mark(delivery, status, error=""):
    Delivery.objects.filter(id=delivery.id).update(
        status=status, last_error=error[:2000], updated_at=timezone.now()
    )


def mark_failed(delivery_id, reason):
    """After the last retry: the delivery is a dead letter unless something already finished it."""
    Delivery.objects.filter(id=delivery_id, status__in=[*CLAIMABLE, DeliveryStatus.SENDING]).update(
        status=DeliveryStatus.FAILED, reason=reason[:500], next_retry_at=None, updated_at=timezone.now()
    )


def schedule_retry(delivery_id, countdown):
    Delivery.objects.filter(id=delivery_id, status=DeliveryStatus.RETRYING).update(
        next_retry_at=timezone.now() + timezone.timedelta(seconds=countdown)
    )
