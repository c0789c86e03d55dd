"""Deliveries in chunks (channels_delivery/engine/chunks.py) on real workers against the fake
SendGrid: each delivery stays its own unit for whatever goes wrong in its chunk."""

import os
import re
import signal
import time
from collections import Counter

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from channels_delivery.engine import delivery as delivery_module
from channels_delivery.engine.tasks import DELIVERY_TASKS
from config.settings import env_sizes
from notifications.clock.reaper import reap
from notifications.models import Delivery, DeliveryStatus, NotificationStatus, Notification
from tests.support import chain, send, wait_until
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def users(make_user, prefix, count):
    names = [f"{prefix}{n}" for n in range(count)]
    for name in names:
        make_user(name, email=f"{name}@example.com")
    return names


def all_in(ids, status, channel="email", timeout=30):
    count = len(ids)
    return wait_until(
        lambda: Delivery.objects.filter(notification_id__in=ids, channel=channel, status=status).count() == count,
        timeout=timeout, message=f"{count} {channel} deliveries {status}",
    )


def outcomes(ids, channel="email"):
    return {str(d.notification_id): [a.outcome for a in d.attempts.order_by("started_at", "id")]
            for d in Delivery.objects.filter(notification_id__in=ids, channel=channel)}


def claims(ids, channel="email"):
    """How many deliveries each claim took: a chunk's share one claim token."""
    tokens = Delivery.objects.filter(notification_id__in=ids, channel=channel).values_list("claim_token", flat=True)
    return sorted(Counter(tokens).values(), reverse=True)


def test_a_chunk_sends_every_delivery_once(celery_worker, sendgrid, app_api, make_user):
    ids = send(app_api, recipients=users(make_user, "ck", 12), channels=["email"])

    all_in(ids, DeliveryStatus.SENT)
    assert sorted(map(len, outcomes(ids).values())) == [1] * 12
    assert set(Delivery.objects.filter(notification_id__in=ids).values_list("attempt_count", flat=True)) == {1}
    assert len(sendgrid.received) == 12
    assert set(Notification.objects.filter(id__in=ids).values_list("status", flat=True)) == {NotificationStatus.SENT}
    assert claims(ids) == [12]  # one chunk claimed them all, in one statement


@pytest.fixture
def sized_worker(worker_env, celery_worker, tmp_path_factory):
    """Chunks of 4, but of 10 for in-app; a line for each delivery sent up to 5 at once."""
    celery_worker.stop()
    worker = WorkerProcess({**worker_env, "NOTIFY_DELIVERY_CHUNK_SIZE": "4", "NOTIFY_DELIVERY_CHUNK_SIZES": "inapp=10",
                            "NOTIFY_LOG_EACH_SENT_UP_TO": "5"},
                           tmp_path_factory.mktemp("sized"), queues=["dispatch", "email", "inapp"], name="chunk-sized")
    try:
        yield worker.start()
    finally:
        worker.stop()
        celery_worker.start()


def test_a_channel_may_have_a_chunk_size_of_its_own(sized_worker, sendgrid, app_api, make_user):
    names = users(make_user, "cs", 10)
    by_email = send(app_api, recipients=names, channels=["email"])
    in_app = send(app_api, recipients=names, channels=["inapp"])

    all_in(by_email, DeliveryStatus.SENT)
    all_in(in_app, DeliveryStatus.DELIVERED, channel="inapp")
    assert claims(by_email) == [4, 4, 2]
    assert claims(in_app, channel="inapp") == [10]
    # Up to 5 sent at once: a line each; more: one line for them, with the claim token that finds them.
    log = sized_worker.log()
    for row in Delivery.objects.filter(notification_id__in=by_email):
        assert re.search(rf"delivery {row.id} sent: email via sendgrid, attempt 1 \(notification {row.notification_id}\)",
                         log)
    [token] = set(Delivery.objects.filter(notification_id__in=in_app).values_list("claim_token", flat=True))
    assert f"10 deliveries delivered: inapp via inbox, attempt 1 (claim {token})" in log
    assert not any(str(row_id) in log for row_id in Delivery.objects.filter(notification_id__in=in_app)
                   .values_list("id", flat=True))


@pytest.mark.parametrize("value, sizes", [("", {}), ("inapp=500", {"inapp": 500}),
                                          (" inapp = 500 , email=20", {"inapp": 500, "email": 20})])
def test_chunk_sizes_per_channel_are_read_from_the_environment(monkeypatch, value, sizes):
    monkeypatch.setenv("NOTIFY_DELIVERY_CHUNK_SIZES", value)
    assert env_sizes("NOTIFY_DELIVERY_CHUNK_SIZES") == sizes


@pytest.mark.parametrize("value", ["inapp", "inapp=", "inapp=0", "inapp=many", "=5", "inapp=-3"])
def test_a_malformed_chunk_size_names_the_variable_and_the_item(monkeypatch, value):
    monkeypatch.setenv("NOTIFY_DELIVERY_CHUNK_SIZES", value)
    with pytest.raises(ImproperlyConfigured, match=f"NOTIFY_DELIVERY_CHUNK_SIZES must be name=size pairs .*not '{re.escape(value)}'"):
        env_sizes("NOTIFY_DELIVERY_CHUNK_SIZES")


def test_one_transient_failure_is_retried_alone_with_its_backoff(celery_worker, sendgrid, app_api, make_user):
    sendgrid.fail_next(1, status=503, body=b'{"errors":[{"message":"try later"}]}')
    ids = send(app_api, recipients=users(make_user, "ct", 10), channels=["email"])

    all_in(ids, DeliveryStatus.SENT)
    seen = outcomes(ids)
    assert sorted(seen.values()) == [["sent"]] * 9 + [["transient_error", "sent"]]
    retried = Delivery.objects.get(notification_id=next(n for n, o in seen.items() if len(o) == 2), channel="email")
    first = retried.attempts.order_by("started_at").first()
    assert retried.attempt_count == 2 and re.fullmatch(r"retry 1 in [\d.]+s", first.note)
    assert first.retry_wait_seconds is not None and 0.125 <= first.retry_wait_seconds <= 0.25  # backoff 0.25, jittered
    assert len(sendgrid.received) == 11  # the nine others were sent once


def test_one_permanent_failure_starts_its_own_fallback(celery_worker, sendgrid, app_api, make_user):
    sendgrid.fail_next(1, status=400, body=b'{"errors":[{"message":"Invalid to email"}]}')
    ids = send(app_api, recipients=users(make_user, "cp", 10), channels=[["email", "inapp"]])

    wait_until(lambda: Delivery.objects.filter(notification_id__in=ids, channel="inapp",
                                               status=DeliveryStatus.DELIVERED).count() == 1,
               timeout=30, message="the failed one's in-app fallback")
    all_in([n for n in ids if not Delivery.objects.filter(notification_id=n, status=DeliveryStatus.FAILED)],
           DeliveryStatus.SENT)
    failed = Delivery.objects.get(notification_id__in=ids, channel="email", status=DeliveryStatus.FAILED)
    assert "Invalid to email" in failed.last_error and failed.attempt_count == 1
    assert Delivery.objects.get(notification_id=failed.notification_id, channel="inapp").reason.startswith(
        "fallback from email")
    # The nine others stay sent by email, their fallbacks untouched.
    assert Delivery.objects.filter(notification_id__in=ids, channel="inapp", status=DeliveryStatus.PENDING).count() == 9
    assert len(sendgrid.received) == 10


def test_a_provider_timeout_holds_up_only_its_own_delivery(celery_worker, sendgrid, app_api, make_user):
    sendgrid.fail_next(1, timeout=True)  # hangs past the SDK's timeout (PROVIDER_TIMEOUT_SECONDS)
    ids = send(app_api, recipients=users(make_user, "co", 10), channels=["email"])

    started = time.time()
    # The nine answered at once are recorded before the hung call gives up.
    wait_until(lambda: Delivery.objects.filter(notification_id__in=ids, status=DeliveryStatus.SENT).count() >= 9,
               timeout=30, message="nine sent")
    nine_after = time.time() - started
    all_in(ids, DeliveryStatus.SENT, timeout=40)
    seen = outcomes(ids)
    assert sorted(seen.values()) == [["sent"]] * 9 + [["transient_error", "sent"]]
    assert nine_after < sendgrid.hang_seconds


def test_a_database_connection_lost_after_the_claim_resumes_the_claim_at_once(celery_worker, sendgrid, make_user,
                                                                              monkeypatch):
    """The stall seen under a Postgres restart: the claim committed as the connection dropped.
    The task re-queues its message with its claim token; the next run takes the `sending` row
    over at once instead of leaving it to the reaper."""
    user = make_user("cs1", email="cs1@example.com")
    _, [row] = chain(user, ("email", DeliveryStatus.QUEUED), title="Stalled")
    real_claim = delivery_module.claim

    def claim_then_lose_the_connection(*args):
        claimed = real_claim(*args)
        with connection.cursor() as cursor:  # what a Postgres restart does to this connection
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return claimed

    monkeypatch.setattr(delivery_module, "claim", claim_then_lose_the_connection)
    result = DELIVERY_TASKS["email"].apply(args=(str(row.id),))
    connection.close()  # this process's own connection is gone too

    assert result.get() == "database unavailable"
    assert Delivery.objects.get(id=row.id).status == DeliveryStatus.SENDING  # claimed, then cut off
    started = time.time()
    sent = wait_until(lambda: Delivery.objects.filter(id=row.id, status=DeliveryStatus.SENT).first(), timeout=20,
                      message="sent by the re-queued message")
    assert time.time() - started < 10  # seconds (NOTIFY_DATABASE_RETRY_SECONDS), not the reaper's minutes
    assert sent.attempt_count == 1 and [a.outcome for a in sent.attempts.all()] == ["sent"]
    assert len(sendgrid.received) == 1


@pytest.fixture
def limited_worker(worker_env, celery_worker, tmp_path_factory):
    """The email queue alone, with a SendGrid limit a chunk runs into (10/s, burst 3)."""
    celery_worker.stop()
    worker = WorkerProcess({**worker_env, "NOTIFY_RATE_LIMITS": "sendgrid=10:3"},
                           tmp_path_factory.mktemp("limited"), queues=["dispatch", "email"], name="chunk-limited")
    try:
        yield worker.start()
    finally:
        worker.stop()
        celery_worker.start()


def test_a_rate_limit_hit_mid_chunk_sends_the_rest_at_the_rate(limited_worker, sendgrid, app_api, make_user):
    ids = send(app_api, recipients=users(make_user, "cr", 12), channels=["email"])

    all_in(ids, DeliveryStatus.SENT, timeout=40)
    times = sorted(request.received_at for request in sendgrid.requests)
    assert len(times) == 12
    assert times[-1] - times[0] >= (12 - 3) / 10 * 0.8  # three at once, then about ten per second
    # Waiting for a token is not an attempt: one attempt per delivery.
    assert sorted(outcomes(ids).values()) == [["sent"]] * 12
    # The chunk took the three tokens there were; the nine others went one by one, each booking
    # its own slot (re-queued once, not polling).
    assert claims(ids) == [3] + [1] * 9
    assert 9 <= limited_worker.log().count("over its rate limit, slot booked") <= 9 + 3


@pytest.fixture
def chunk_worker(worker_env, celery_worker, tmp_path_factory):
    celery_worker.stop()
    log_dir = tmp_path_factory.mktemp("chunk-kill")
    workers = [WorkerProcess(worker_env, log_dir, queues=["dispatch", "email"], name="chunk-victim")]
    try:
        yield workers, log_dir
    finally:
        for worker in workers:
            if worker.process and worker.process.poll() is None:
                worker.stop(signal.SIGKILL)
        celery_worker.start()


def test_a_worker_killed_mid_chunk_loses_nothing_and_duplicates_at_most_the_chunk(chunk_worker, worker_env, sendgrid,
                                                                                  app_api, make_user):
    workers, log_dir = chunk_worker
    sendgrid.fail_next(40, status=0, delay=1.0)  # slow answers: the chunk is in flight when the worker dies
    names = users(make_user, "ck", 20)
    workers[0].start()
    ids = send(app_api, recipients=names, channels=["email"])

    wait_until(lambda: len(sendgrid.received) >= 5, timeout=30, message="the chunk in flight")
    os.killpg(workers[0].process.pid, signal.SIGKILL)
    workers[0].process.wait()
    # What the victim sent: its last requests may still be reaching the fake server (the kernel
    # delivers a killed process's written bytes), so count once nothing new arrives. Counted at
    # once, two stragglers once made 16 duplicates look like more than the 14 "in flight".
    in_flight = -1
    while in_flight != len(sendgrid.received):
        in_flight = len(sendgrid.received)
        time.sleep(0.5)
    workers.append(WorkerProcess(worker_env, log_dir, queues=["dispatch", "email"], name="chunk-heir").start())

    # The claimed rows wait in `sending` for the reaper (here: at once), which sends them again.
    wait_until(lambda: reap(sending_after=0, queued_after=0)["sending"] or
               not Delivery.objects.filter(notification_id__in=ids, status=DeliveryStatus.SENDING).exists(),
               timeout=20, message="the reaper re-queued the claimed rows")
    all_in(ids, DeliveryStatus.SENT, timeout=60)
    delivered = [request.json()["personalizations"][0]["custom_args"]["delivery_id"] for request in sendgrid.requests]
    assert set(delivered) == {str(d) for d in Delivery.objects.filter(notification_id__in=ids).values_list("id", flat=True)}
    assert 20 <= len(delivered) <= 20 + in_flight  # duplicates: at most the chunk's calls in flight
