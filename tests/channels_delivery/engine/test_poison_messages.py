"""Messages that kill their worker: real Celery workers, their pool processes SIGKILLed (what the
kernel's OOM killer does) while they run the message. The message is parked after
NOTIFY_POISON_MAX_DEATHS deaths, and the reaper stops re-enqueueing a row after
NOTIFY_REAPER_MAX_REQUEUES tries, each with its reason; the worker keeps serving others."""

import os
import signal
import time
from pathlib import Path

import pytest

from notifications import shared_state
from notifications.planning import planner
from notifications.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    Template,
    WebhookEndpoint,
)
from notifications.clock.reaper import reap
from notifications.tasks import dispatch_notifications

from tests.support.fakes.hostile import HostileReceiver
from tests.support import wait_until
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def pool_processes(worker):
    """The pool children of a worker's main process (the processes that run tasks)."""
    pid = worker.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def kill_pool(worker):
    for child in pool_processes(worker):
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def hostile():
    receiver = HostileReceiver().start()
    yield receiver
    receiver.stop()


def test_the_reaper_gives_up_on_a_delivery_that_kills_every_worker(celery_worker, hostile, make_user, settings):
    """Every time the webhook is called, the worker running it dies: the row stays `sending`, the
    reaper re-enqueues it, it dies again... until the reaper fails it with the reason."""
    settings.NOTIFY_REAPER_MAX_REQUEUES = 2
    hostile.on_request = lambda *request: kill_pool(celery_worker)
    mallory = make_user("mallory")
    WebhookEndpoint.objects.create(user=mallory, url=f"{hostile.url}/hook")
    bystander = make_user("ada")
    notification = Notification.objects.create(recipient=mallory, category_id="orders", title="Hi",
                                               routes=[["webhook"]], status=NotificationStatus.DISPATCHED)
    [row] = planner.plan(notification)
    row.save()
    from channels_delivery.engine.fallback import enqueue_deliveries

    enqueue_deliveries([Delivery.objects.select_related("notification").get(id=row.id)])
    for calls in (1, 2, 3):  # the first run, then one per re-enqueue
        wait_until(lambda: len(hostile.requests) >= calls, timeout=30, message=f"call {calls}")
        wait_until(lambda: Delivery.objects.get(id=row.id).status == DeliveryStatus.SENDING, message="stuck")
        time.sleep(0.5)
        reap(sending_after=0, queued_after=3600, retrying_after=3600, pending_after=3600)

    failed = Delivery.objects.get(id=row.id)
    assert failed.status == DeliveryStatus.FAILED
    assert failed.reason.startswith("reaper gave up after 2 re-enqueues: stuck in sending again each time")
    assert DeliveryAttempt.objects.filter(delivery=row, outcome="requeued").count() == 2
    time.sleep(1)
    assert len(hostile.requests) == 3  # never called again
    assert Delivery.objects.dead_letters().filter(id=row.id).exists()
    # The worker serves everyone else.
    inapp = Notification.objects.create(recipient=bystander, category_id="orders", title="still here",
                                        routes=[["inapp"]])
    dispatch_notifications.delay([str(inapp.id)])
    reached = [DeliveryStatus.SENT, DeliveryStatus.DELIVERED]
    wait_until(lambda: Delivery.objects.filter(notification=inapp, status__in=reached).exists(),
               timeout=30, message="bystander served")


@pytest.fixture
def slow_dispatch_worker(worker_env, tmp_path):
    """A dispatch worker of its own (on a queue only it reads) where one template renders for long."""
    env = {**worker_env, "NOTIFY_POISON_MAX_DEATHS": "2", "NOTIFY_TEMPLATE_RENDER_SECONDS": "120",
           "NOTIFY_TEMPLATE_MAX_ITERATIONS": str(10**12)}
    worker = WorkerProcess(env, tmp_path, queues=["poison-dispatch"], concurrency=1, name="poison-dispatch").start()
    yield worker
    worker.stop()


SLOW_TEMPLATE = "{% for a in data.items %}{% for b in data.items %}x{% endfor %}{% endfor %}"
def deaths_counted():
    """The death counts the poison guard keeps in Redis, by task id (set as handed-back runs start)."""
    redis = shared_state.client()
    return {key.decode(): int(redis.get(key) or 0) for key in redis.scan_iter("notify:poison:*")}


def kill_once_running(worker, deaths_before):
    """Kill the pool while a run is in progress: the first run a moment after it was taken, a
    handed-back run once its start has counted the deaths so far."""
    if deaths_before:
        wait_until(lambda: deaths_before in deaths_counted().values(), timeout=30, message=f"run {deaths_before + 1}")
    time.sleep(1.5)  # well inside the render
    kill_pool(worker)


def test_a_dispatch_message_that_kills_its_worker_is_parked(slow_dispatch_worker, make_user):
    worker = slow_dispatch_worker
    Template.objects.create(key="orders", channel="email", subject="s", body=SLOW_TEMPLATE)
    notification = Notification.objects.create(recipient=make_user("ada"), category_id="orders", title="Hi",
                                               routes=[["email"]], data={"items": list(range(30000))})
    dispatch_notifications.apply_async(([str(notification.id)],), queue="poison-dispatch")
    kill_once_running(worker, 0)
    kill_once_running(worker, 1)
    wait_until(lambda: Notification.objects.get(id=notification.id).status == NotificationStatus.FAILED,
               timeout=30, message="parked")
    parked = Notification.objects.get(id=notification.id)
    assert parked.trace[-1]["event"] == "parked"
    assert parked.trace[-1]["reason"] == "poison message: its dispatch worker died 2 times; parked"
    assert not Delivery.objects.filter(notification=notification).exists()


def test_a_batch_that_kills_its_worker_is_split_so_the_innocent_go_out(slow_dispatch_worker, make_user):
    """One notification of a batch kills every worker; after two deaths the batch is split, the
    innocent two are planned, and the poisonous one, killing twice more on its own, is parked."""
    worker = slow_dispatch_worker
    Template.objects.create(key="orders", channel="email", subject="s", body=SLOW_TEMPLATE)
    innocent = [Notification.objects.create(recipient=make_user(f"u{n}"), category_id="orders", title="Hi",
                                            routes=[["email"]], data={"items": []}) for n in range(2)]
    poisonous = Notification.objects.create(recipient=make_user("eve"), category_id="orders", title="Hi",
                                            routes=[["email"]], data={"items": list(range(30000))})
    ids = [str(innocent[0].id), str(innocent[1].id), str(poisonous.id)]
    dispatch_notifications.apply_async((ids,), queue="poison-dispatch")
    kill_once_running(worker, 0)
    kill_once_running(worker, 1)
    # One message each now, in order: the innocent go out, then the poisonous one runs alone.
    # dispatched, or sent already if an email worker runs
    planned = [NotificationStatus.DISPATCHED, NotificationStatus.SENT, NotificationStatus.DELIVERED]
    wait_until(lambda: Notification.objects.filter(id__in=[n.id for n in innocent], status__in=planned).count() == 2,
               timeout=30, message="the innocent planned")
    assert Notification.objects.get(id=poisonous.id).status == NotificationStatus.PENDING
    kill_once_running(worker, 0)  # its first death alone
    kill_once_running(worker, 1)  # and its second, when it is handed back
    wait_until(lambda: Notification.objects.get(id=poisonous.id).status == NotificationStatus.FAILED,
               timeout=30, message="parked")
    assert Notification.objects.get(id=poisonous.id).trace[-1]["event"] == "parked"
