"""The empty task the throughput benchmark compares deliveries with.

Workers load it with `-I bench.noop`; it runs under the service's own Celery app and settings
(acks_late, events, prefetch), so the only difference to a delivery is the work inside.
"""

from celery import shared_task


@shared_task(name="bench.noop")
def noop(number):
    return None
