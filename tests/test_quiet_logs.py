"""What `bin/serve` prints at INFO, read from real worker and beat processes: nothing while the
clock ticks with nothing to do, one line per thing a person wants to know."""

import logging
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from notifications.models import Category, Delivery, DeliveryStatus
from notifications.planning.sending import store_and_dispatch
from tests.support import reset_engine_state, send, wait_until
from tests.support.workers import BeatProcess, WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

# Celery's format ("[time: INFO/MainProcess] ...") and settings.LOGGING's ("time INFO name ...").
LOUD = re.compile(r"^(\[[^\]]*: (INFO|WARNING|ERROR|CRITICAL)/|\S+ \S+ (INFO|WARNING|ERROR|CRITICAL) )")
FREQUENT = ["maintenance.dispatch_due_notifications", "maintenance.send_due_digests", "maintenance.escalate_unread"]


def loud_lines(text):
    return [line for line in text.splitlines() if LOUD.match(line)]


def control(method, *args, **kwargs):
    # A connection of its own: a pooled one may have idled out on the server during a long session.
    with celery_app.connection_for_write() as connection:
        return getattr(celery_app.control, method)(*args, connection=connection, **kwargs)


def tasks_run(nodename):
    with celery_app.connection_for_write() as connection:
        stats = celery_app.control.inspect(destination=[nodename], timeout=2, connection=connection).stats() or {}
    return stats.get(nodename, {}).get("total", {})


@pytest.fixture
def own_maintenance_worker(celery_worker, worker_env, tmp_path):
    """A maintenance worker as bin/serve runs it; the shared test worker stops taking that queue."""
    shared = celery_worker.hostname
    control("cancel_consumer", "maintenance", destination=[shared], reply=True, timeout=5)
    worker = WorkerProcess(worker_env, tmp_path, queues=["maintenance"], concurrency=1, name="maintenance")
    try:
        yield worker.start()
    finally:
        worker.stop()
        control("add_consumer", "maintenance", destination=[shared], reply=True, timeout=5)


def test_a_tick_with_nothing_to_do_logs_nothing_at_info(own_maintenance_worker, worker_env, tmp_path, make_user):
    worker = own_maintenance_worker
    beat = BeatProcess(worker_env, tmp_path).start()
    try:
        started = {"beat": len(beat.log().splitlines()), "worker": len(worker.log().splitlines())}
        nodename = worker.hostname
        # Beat sends these every 1-2 s: wait until the worker has really run a few of each.
        ran = wait_until(lambda: (lambda total: total if all(total.get(name, 0) >= 2 for name in FREQUENT)
                                  else None)(tasks_run(nodename)), timeout=60, message="idle ticks")
        print(f"\nidle ticks run by the maintenance worker: {ran}")
        idle = {"beat": beat.log().splitlines()[started["beat"]:],
                "worker": worker.log().splitlines()[started["worker"]:]}
        assert loud_lines("\n".join(idle["beat"])) == []
        assert loud_lines("\n".join(idle["worker"])) == []

        # A tick that does something says so, once.
        ada = make_user("ada")
        store_and_dispatch(recipients=[ada], category=Category.objects.get(key="orders"), title="Later",
                           priority="medium", data={}, channels=["inapp"],
                           scheduled_at=timezone.now() + timedelta(seconds=1))
        line = "scheduled: 1 due notifications dispatched, 0 expired before their time"
        wait_until(lambda: line in worker.log(), timeout=30, message="the tick that dispatched it")
        wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).exists(), timeout=30,
                   message="delivered in the inbox")
        assert worker.log().count(line) == 1
        assert loud_lines("\n".join(beat.log().splitlines()[started["beat"]:])) == []
    finally:
        beat.stop()


def lines_about(log, delivery_id):
    return [line.split("] ", 1)[-1] for line in loud_lines(log) if str(delivery_id) in line]


@pytest.fixture
def engine_state():
    reset_engine_state()
    yield
    reset_engine_state()


def test_one_line_each_for_accepted_retried_failed_fell_back_and_sent(
        engine_state, celery_worker, sendgrid, app_api, make_user, caplog):
    make_user("42", email="ada@example.com")
    sendgrid.fail_next(status=503, body=b'{"errors":[{"message":"try later"}]}')
    sendgrid.fail_next(status=400, body=b'{"errors":[{"message":"Invalid to email"}]}')

    with caplog.at_level(logging.INFO, logger="notifications.planning.sending"):
        [notification_id] = send(app_api, recipients=["42"], channels=[["email", "inapp"]])
    inapp = wait_until(lambda: Delivery.objects.filter(notification_id=notification_id, channel="inapp",
                                                       status=DeliveryStatus.DELIVERED).first(), timeout=30,
                       message="delivered")
    email = Delivery.objects.get(notification_id=notification_id, channel="email")

    accepted = [r.getMessage() for r in caplog.records if r.name == "notifications.planning.sending"]
    assert accepted == [f"accepted notification {notification_id}: category orders, priority medium, from Acme shop"]
    email_lines = wait_until(lambda: lines_about(celery_worker.log(), email.id) or None, message="email lines")
    print("\n" + "\n".join(email_lines + lines_about(celery_worker.log(), inapp.id)))
    assert [line.split(":", 1)[0].rsplit(" ", 1)[-1] for line in email_lines] == ["retried", "failed"]
    assert email_lines[0].startswith(f"delivery {email.id} retried: retry 1 of 3 in ")
    assert email_lines[1].startswith(f"delivery {email.id} failed: email, permanent error: SendGrid 400")
    assert email_lines[1].endswith("; next in its chain: inapp")
    assert lines_about(celery_worker.log(), inapp.id) == [
        f"delivery {inapp.id} fell back: inapp takes over (fallback from email: permanent error: SendGrid 400: "
        f'{{"errors":[{{"message":"Invalid to email"}}]}}; notification {notification_id})',
        f"delivery {inapp.id} delivered: inapp via inbox, attempt 1 (notification {notification_id})",
    ]
    # An expected failure is one line, not a traceback.
    assert "PermanentDeliveryError" not in "\n".join(
        line for line in celery_worker.log().splitlines() if str(email.id) in line or "Traceback" in line)
