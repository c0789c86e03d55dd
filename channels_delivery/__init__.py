"""How a message leaves the building. Public entry points: enqueue_deliveries(),
stalled_fallbacks() (for the reaper) and redrive() (dead letters)."""


def enqueue_deliveries(deliveries, *, whole_plan=False):
    """Send each queued (or retrying) Delivery's task to its channel queue, with the pending
    deliveries after it in its route as its fallback chain. Call after the rows are committed.

    whole_plan: `deliveries` holds every planned row of their routes, so nothing is looked up.
    """
    from .fallback import enqueue

    enqueue(deliveries, whole_plan=whole_plan)


def stalled_fallbacks(older_than, limit=1000):
    """Pending deliveries whose chain predecessor failed before `older_than` but which never
    started (the errback message was lost). Pass them to enqueue_deliveries() to resume them."""
    from .fallback import stalled

    return stalled(older_than, limit)


def redrive(delivery_id, by):
    from .fallback import redrive as redrive_delivery

    return redrive_delivery(delivery_id, by)
