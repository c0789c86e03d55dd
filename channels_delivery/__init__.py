"""How a message leaves the building. Public entry point: enqueue_deliveries()."""


def enqueue_deliveries(deliveries):
    """Send each queued Delivery's task to its channel queue. Call after the rows are committed."""
    from .tasks import DELIVERY_TASKS

    for delivery in deliveries:
        DELIVERY_TASKS[delivery.channel].delay(str(delivery.id))
