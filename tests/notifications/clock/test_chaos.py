"""Faults while a channel worker drains a backlog: a SIGKILLed worker, a flushed Redis, Postgres
dropping every connection. After each, every delivery ends `sent` (at the fake provider) or
`failed` with a reason, none is lost, and duplicates stay within the deliveries in flight at the fault
(a chunk per task: engine/chunks.py).

The 2,000-delivery runs are marked `chaos` (bin/test -m chaos); a 200-delivery run of each fault
stays in the default suite. Each run prints what it saw.
"""

import os
import signal
import time
from collections import Counter
from contextlib import contextmanager

import pytest
import redis
from django.conf import settings
from django.db import connection
from kombu import pools

from config.celery import app as celery_app
from notifications.clock.reaper import reap
from notifications.models import Category, Delivery, DeliveryStatus, Notification
from notifications.planning.sending import store_and_dispatch
from tests.support.workers import WorkerProcess

EMAIL_CONCURRENCY = 4
FINAL = {DeliveryStatus.SENT, DeliveryStatus.FAILED}


@contextmanager
def chaos_workers(celery_worker, worker_env, log_dir):
    """Our own dispatch and email workers (the shared all-queue worker pauses meanwhile)."""
    celery_worker.stop()
    workers = {
        "dispatch": WorkerProcess(worker_env, log_dir, queues=["dispatch"], concurrency=1, name="chaos-dispatch"),
        "email": WorkerProcess(worker_env, log_dir, queues=["email"], concurrency=EMAIL_CONCURRENCY,
                               name="chaos-email"),
    }
    try:
        for worker in workers.values():
            worker.launch()
        for worker in workers.values():
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers.values():
            worker.stop(signal.SIGKILL if worker.process and worker.process.poll() is None else signal.SIGTERM)
        celery_worker.start()


def kill_email_worker(workers, worker_env, log_dir, broker_url):
    os.killpg(workers["email"].process.pid, signal.SIGKILL)
    workers["email"].process.wait()
    workers["email"] = WorkerProcess(worker_env, log_dir, queues=["email"], concurrency=EMAIL_CONCURRENCY,
                                     name="chaos-email-2").start()
    return f"SIGKILLed the email worker's process group (pid {workers['email'].process.pid} replaces it)"


def flush_redis(workers, worker_env, log_dir, broker_url):
    if not broker_url.startswith("redis"):
        pytest.skip("FLUSHDB needs the Redis broker")
    client = redis.Redis.from_url(broker_url)
    client.flushdb()  # only the test broker's own database, never FLUSHALL
    return f"FLUSHDB on {broker_url} (the test broker's own Redis database)"


def drop_redis_connections(workers, worker_env, log_dir, broker_url):
    """What a Redis restart does to our processes, without restarting the Redis other tests use:
    every client connection on the test broker's database is closed by the server."""
    if not broker_url.startswith("redis"):
        pytest.skip("needs the Redis broker")
    client = redis.Redis.from_url(broker_url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    me = client.client_id()
    victims = [c["id"] for c in client.client_list() if int(c.get("db", -1)) == db and int(c["id"]) != me]
    for victim in victims:
        client.client_kill_filter(_id=victim)
    # This test process's own pooled broker connections died too: later tests that wait for replies
    # on one (remote control) would read from a closed socket, so the pool starts afresh.
    # (what Celery itself does after a fork).
    pools.reset()
    celery_app._after_fork()
    return f"CLIENT KILL on all {len(victims)} connections to Redis db {db} (a Redis restart, for our clients only)"


def terminate_postgres_backends(workers, worker_env, log_dir, broker_url):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        [killed] = cursor.fetchone()
    return f"pg_terminate_backend on all {killed} other connections to {connection.settings_dict['NAME']}"


FAULTS = {
    "sigkill-worker": kill_email_worker,
    "flush-redis": flush_redis,
    "redis-drop": drop_redis_connections,
    "postgres-drop": terminate_postgres_backends,
}


def drain_with_fault(fault, count, sendgrid, workers, worker_env, log_dir, broker_url, make_user):
    ada = make_user("ada", email="ada@example.com")
    started = time.time()
    store_and_dispatch(recipients=[ada] * count, category=Category.objects.get(key="orders"), title="Chaos",
                       channels=["email"], priority="medium", data={})
    sendgrid.wait_for(count // 4, timeout=120)
    in_flight = Delivery.objects.filter(status=DeliveryStatus.SENDING).count()
    what = FAULTS[fault](workers, worker_env, log_dir, broker_url)
    at_fault = len(sendgrid.requests)

    reaps, last, quiet_since = [], -1, time.time()
    deadline = time.time() + max(120, count / 10)
    while time.time() < deadline:
        done = Delivery.objects.filter(status__in=FINAL).count()
        if done == count and Notification.objects.filter(status="pending").count() == 0:
            break
        if done != last:
            last, quiet_since = done, time.time()
        elif time.time() - quiet_since > 3:
            # Nothing moved for 3 s: the backlog the broker still had is drained, so whatever is
            # left was lost; the reaper (thresholds shrunk for the test) puts it back.
            reaps.append(reap(queued_after=1, sending_after=1, retrying_after=1, pending_after=1))
            quiet_since = time.time()
        time.sleep(0.2)

    statuses = Counter(Delivery.objects.values_list("status", flat=True))
    ids = Counter(r.json()["personalizations"][0]["custom_args"]["delivery_id"] for r in sendgrid.requests)
    duplicates = sum(n - 1 for n in ids.values())
    sent_ids = {str(i) for i in Delivery.objects.filter(status=DeliveryStatus.SENT).values_list("id", flat=True)}
    failed_without_reason = Delivery.objects.filter(status=DeliveryStatus.FAILED, reason="", last_error="").count()
    reasons = Counter(
        (reason or error)[:100]
        for reason, error in Delivery.objects.filter(status=DeliveryStatus.FAILED).values_list("reason", "last_error")
    )
    print(
        f"\n[{fault}, {count} deliveries] fault: {what}\n"
        f"  at the fault: {at_fault} requests at the fake, {in_flight} deliveries in `sending`\n"
        f"  reaper runs: {[r for r in reaps if any(r.values())] or 'none needed'}\n"
        f"  end ({time.time() - started:.1f} s): Postgres statuses {dict(statuses)}; fake SendGrid got "
        f"{len(sendgrid.requests)} requests for {len(ids)} deliveries, {duplicates} duplicates"
        + (f"\n  failed: {dict(reasons)}" if reasons else "")
    )
    assert Delivery.objects.count() == count, "a delivery row is missing"
    assert set(statuses) <= FINAL, f"not every delivery finished: {dict(statuses)}"
    assert failed_without_reason == 0
    assert sent_ids == set(ids), "a `sent` row never reached the fake, or the fake got an unknown one"
    # In flight at the fault: a chunk per task (engine/chunks.py), its calls made but not recorded.
    assert duplicates <= EMAIL_CONCURRENCY * settings.NOTIFY_DELIVERY_CHUNK_SIZE, \
        "more duplicates than deliveries in flight at the fault"


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("count", [200, pytest.param(2000, marks=pytest.mark.chaos)])
def test_a_fault_mid_drain_loses_nothing(
    fault, count, celery_worker, worker_env, sendgrid, make_user, isolated_broker, tmp_path
):
    with chaos_workers(celery_worker, worker_env, tmp_path) as workers:
        drain_with_fault(fault, count, sendgrid, workers, worker_env, tmp_path, isolated_broker, make_user)
