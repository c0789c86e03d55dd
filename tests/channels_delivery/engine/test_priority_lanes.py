"""An urgent notification does not wait behind a backlog: its messages take the broker's first lane."""

import pytest

from config.celery import app as celery_app
from notifications.models import Category, Delivery, DeliveryStatus
from notifications.planning import sending
from tests.support import wait_until
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

BACKLOG = 40


def send(users, priority, title):
    return sending.store_and_dispatch(
        recipients=users, category=Category.objects.get(key="orders"), title=title,
        channels=["inapp"], priority=priority, data={},
    )


def test_urgent_delivery_overtakes_a_backlog(celery_worker, worker_env, make_user, tmp_path):
    users = [make_user(f"bulk{n}") for n in range(BACKLOG)]
    boss = make_user("boss")
    # The shared worker keeps planning (dispatch) but stops taking in-app deliveries, so a backlog builds.
    celery_app.control.cancel_consumer("inapp", destination=[celery_worker.hostname], reply=True, timeout=5)
    drain = None
    try:
        send(users, "low", "bulk")
        wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.QUEUED).count() == BACKLOG,
                   timeout=30, message="backlog planned")
        [urgent] = send([boss], "urgent", "now")
        wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.QUEUED).count() == BACKLOG + 1,
                   timeout=30, message="urgent planned behind the backlog")

        drain = WorkerProcess({**worker_env, "CELERY_WORKER_PREFETCH_MULTIPLIER": "1"}, log_dir=tmp_path,
                              queues=["inapp"], concurrency=1, name="inapp-drain").start()
        wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == BACKLOG + 1,
                   timeout=60, message="everything sent")
    finally:
        if drain is not None:
            drain.stop()
        celery_app.control.add_consumer("inapp", destination=[celery_worker.hostname], reply=True, timeout=5)

    order = list(Delivery.objects.order_by("sent_at").values_list("notification_id", flat=True))
    print(f"\nurgent delivery sent as number {order.index(urgent.id) + 1} of {len(order)}")
    assert order[0] == urgent.id
