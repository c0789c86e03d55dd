"""How a message leaves the building. Public entry point: enqueue_deliveries()."""


def enqueue_deliveries(deliveries):
    """Send each queued Delivery's task to its channel queue. Call after the rows are committed."""
    from .tasks import DELIVERY_TASKS

    for delivery in deliveries:
        # A notification's expires_at becomes the message's: a worker discards it unrun after that.
        expires = delivery.notification.expires_at
        DELIVERY_TASKS[delivery.channel].apply_async((str(delivery.id),), expires=expires)
