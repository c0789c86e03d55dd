"""One vocabulary for what providers report, and what each report does to a delivery."""

import logging
import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from channels_delivery.engine import fallback
from notifications.models import Delivery, DeliveryStatus, ProviderEvent, settle_notifications

logger = logging.getLogger(__name__)

QUEUED, SENT, DELIVERED, DEFERRED, BOUNCED, UNDELIVERED, OTHER = (
    "queued", "sent", "delivered", "deferred", "bounced", "undelivered", "other"
)

# event kind -> (new status, statuses it may move from)
TRANSITIONS = {
    DELIVERED: (DeliveryStatus.DELIVERED, [DeliveryStatus.SENDING, DeliveryStatus.SENT]),
    BOUNCED: (DeliveryStatus.BOUNCED, [DeliveryStatus.SENDING, DeliveryStatus.SENT, DeliveryStatus.DELIVERED]),
    UNDELIVERED: (DeliveryStatus.UNDELIVERED, [DeliveryStatus.SENDING, DeliveryStatus.SENT]),
}


@dataclass
class Event:
    provider: str
    event_id: str
    kind: str
    delivery_id: str = ""
    provider_message_id: str = ""
    description: str = ""
    payload: dict = field(default_factory=dict)


def find_delivery(event):
    try:
        delivery_id = uuid.UUID(str(event.delivery_id))
    except ValueError:
        delivery_id = None
    if delivery_id is not None:
        found = Delivery.objects.filter(id=delivery_id).first()
        if found is not None:
            return found
    if event.provider_message_id:
        return Delivery.objects.filter(provider_message_id=event.provider_message_id).first()
    return None


def record(event):
    """Store the event once (provider, event id) and apply it. Returns what happened, for logs."""
    delivery = find_delivery(event)
    with transaction.atomic():
        _stored, created = ProviderEvent.objects.get_or_create(
            provider=event.provider,
            event_id=event.event_id[:200],
            defaults={"event_type": event.kind, "delivery": delivery, "payload": event.payload},
        )
        if not created:
            return "duplicate"
        if delivery is None:
            return "unknown delivery"
        if event.kind not in TRANSITIONS:
            return "recorded"
        status, from_statuses = TRANSITIONS[event.kind]
        if status == DeliveryStatus.DELIVERED:
            changes = {"delivered_at": timezone.now()}
        else:
            changes = {"reason": f"{event.kind} ({event.provider}): {event.description}", "last_error": event.description}
        moved = Delivery.objects.filter(id=delivery.id).move(status, source=from_statuses, **changes)
        if not moved:
            return f"ignored: delivery is {delivery.status}"
        if status == DeliveryStatus.DELIVERED:
            settle_notifications([delivery.notification_id])
        else:
            fallback.continue_after(delivery)
    logger.info("delivery %s is now %s (%s event %s)", delivery.id, status, event.provider, event.event_id)
    return status
