"""Two worker processes on the email queue: a shared rate limit, and no double sends."""

import re

import pytest

from channels_delivery.engine.tasks import DELIVERY_TASKS
from notifications.models import Delivery, DeliveryStatus
from tests.support import chain, send, wait_until, window_max
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture(scope="module")
def two_workers(worker_env, celery_worker, tmp_path_factory):
    """Two worker processes on the email queue with a tight SendGrid limit (sendgrid=10:3); the
    shared all-queue worker pauses meanwhile, so these two are all there is."""
    env = {**worker_env, "NOTIFY_RATE_LIMITS": "sendgrid=10:3"}
    log_dir = tmp_path_factory.mktemp("engine-workers")
    workers = [WorkerProcess(env, log_dir, name="limited-all"),
               WorkerProcess(env, log_dir, queues=["email"], name="limited-email")]
    celery_worker.stop()
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        celery_worker.start()


def logs(workers):
    return "".join(worker.log() for worker in workers)


def test_two_workers_together_stay_under_the_provider_rate_limit(two_workers, sendgrid, app_api, make_user):
    usernames = [f"rl{n}" for n in range(24)]
    for name in usernames:
        make_user(name)

    ids = send(app_api, recipients=usernames, channels=["email"])

    sendgrid.wait_for(24, timeout=60)
    wait_until(lambda: Delivery.objects.filter(notification_id__in=ids, status=DeliveryStatus.SENT).count() == 24,
               timeout=30, message="all sent")
    times = [request.received_at for request in sendgrid.requests]
    # sendgrid=10:3 -> at most 3 + 10 per second; a little slack for arrival jitter on a busy machine.
    assert window_max(times, 1.0) <= 15
    assert max(times) - min(times) >= (24 - 3) / 10 * 0.8
    # Waiting for a token is not an attempt: one claim and one attempt row per delivery.
    for delivery in Delivery.objects.filter(notification_id__in=ids):
        assert delivery.attempt_count == 1
        assert [a.outcome for a in delivery.attempts.all()] == ["sent"]
    requeues = sum(1 for line in logs(two_workers).splitlines() if "over its rate limit" in line and "not counted" in line)
    # Over the limit a delivery books its slot and is re-queued once; it does not poll.
    assert 24 - 3 - 6 <= requeues <= 24 + 6
    for worker in two_workers:  # both took their share
        assert re.search(r"delivery \S+ sent: email via sendgrid", worker.log())


def test_the_same_delivery_enqueued_twice_concurrently_is_sent_once(two_workers, sendgrid, make_user):
    user = make_user("49", email="ada@example.com")
    rows = [chain(user, ("email", DeliveryStatus.QUEUED), title=f"Twice {n}")[1][0] for n in range(4)]
    sendgrid.fail_next(8, status=0, delay=0.5)  # slow answers keep both copies in flight together

    for row in rows:
        DELIVERY_TASKS["email"].delay(str(row.id))
        DELIVERY_TASKS["email"].delay(str(row.id))

    wait_until(lambda: Delivery.objects.filter(id__in=[r.id for r in rows], status=DeliveryStatus.SENT).count() == 4,
               timeout=40, message="all sent")

    def refused(row):
        lines = logs(two_workers).splitlines()
        return any(str(row.id) in line and ("nothing to do" in line or "already claimed" in line) for line in lines)

    wait_until(lambda: all(refused(row) for row in rows), timeout=20, message="every duplicate refused")
    sent_ids = [request.json()["personalizations"][0]["custom_args"]["delivery_id"] for request in sendgrid.requests]
    assert sorted(sent_ids) == sorted(str(row.id) for row in rows)
    for row in rows:
        row.refresh_from_db()
        assert row.attempt_count == 1
