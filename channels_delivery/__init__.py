"""How a message leaves the building. Public entry points: enqueue_deliveries(), redrive(),
continue_after() (a provider reported a sent delivery undelivered or bounced)."""


def enqueue_deliveries(deliveries, *, whole_plan=False):
    """Send each queued (or retrying) Delivery's task to its channel queue, with the pending
    deliveries after it in its route as its fallback chain. Call after the rows are committed.

    whole_plan: `deliveries` holds every planned row of their routes, so nothing is looked up.
    """
    from .fallback import enqueue

    enqueue(deliveries, whole_plan=whole_plan)


def redrive(delivery_id, by):
    from .fallback import redrive as redrive_delivery

    return redrive_delivery(delivery_id, by)
