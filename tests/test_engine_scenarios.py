"""The delivery engine end to end: real workers, the real SendGrid SDK, the fake SendGrid."""

import re

import pytest
from rest_framework.test import APIClient

from channels_delivery import enqueue_deliveries
from channels_delivery.circuit import breaker
from channels_delivery.tasks import deliver_email, deliver_inapp
from notifications.models import ApiClient, Delivery, DeliveryStatus, Notification, NotificationStatus

from .engine_helpers import chain, reset_engine_state, window_max
from .helpers import wait_until
from .workers import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture(autouse=True)
def clean_engine_state():
    reset_engine_state()
    yield
    reset_engine_state()


@pytest.fixture(scope="module")
def second_email_worker(worker_env, celery_worker, tmp_path_factory):
    """Another worker process on the email queue, beside the session worker."""
    worker = WorkerProcess(worker_env, log_dir=tmp_path_factory.mktemp("email2"), queues=["email"], name="email2")
    worker.start()
    yield worker
    worker.stop()


def send(api, **body):
    response = api.post("/api/notifications/", {"category": "orders", "title": "Order shipped", **body}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["ids"]


def deliveries_of(notification_id):
    return {d.channel: d for d in Delivery.objects.filter(notification_id=notification_id)}


def wait_status(notification_id, channel, status, timeout=30):
    return wait_until(
        lambda: Delivery.objects.filter(notification_id=notification_id, channel=channel, status=status).first(),
        timeout=timeout, message=f"{channel} {status}",
    )


def test_transient_errors_then_success_with_growing_jittered_backoff(celery_worker, sendgrid, app_api, make_user):
    make_user("42", email="ada@example.com")
    sendgrid.fail_next(3, status=503, body=b'{"errors":[{"message":"try later"}]}')

    [notification_id] = send(app_api, recipients=["42"], channels=["email"])

    delivery = wait_status(notification_id, "email", DeliveryStatus.SENT)
    attempts = list(delivery.attempts.order_by("number"))
    assert [a.outcome for a in attempts] == ["transient_error"] * 3 + ["sent"]
    assert [a.provider_status_code for a in attempts] == ["503", "503", "503", "202"]
    assert delivery.attempt_count == 4 and delivery.next_retry_at is None
    waits = [float(re.fullmatch(r"retry \d in ([\d.]+)s", a.note).group(1)) for a in attempts[:3]]
    # factor 0.25 s doubling, equal jitter: each wait lies in the upper half of its step.
    for n, wait in enumerate(waits):
        assert 0.25 * 2**n / 2 <= wait <= 0.25 * 2**n
    assert waits != [0.25, 0.5, 1.0]  # jittered, not exact doubling
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in zip(attempts, attempts[1:])]
    assert all(gap >= wait - 0.05 for gap, wait in zip(gaps, waits))
    assert gaps[2] > gaps[0]
    assert len(sendgrid.received) == 4 and len(sendgrid.requests) == 1
    assert Notification.objects.get(id=notification_id).status == NotificationStatus.DELIVERED


def test_permanent_error_falls_back_to_the_next_channel_at_once(celery_worker, sendgrid, app_api, make_user):
    make_user("43", email="bad@example.com")
    sendgrid.fail_next(status=400, body=b'{"errors":[{"message":"Invalid to email"}]}')

    [notification_id] = send(app_api, recipients=["43"], channels=[["email", "inapp"]])

    inapp = wait_status(notification_id, "inapp", DeliveryStatus.SENT)
    email = Delivery.objects.get(notification_id=notification_id, channel="email")
    assert email.status == DeliveryStatus.FAILED and email.attempt_count == 1
    assert email.reason.startswith("permanent error: SendGrid 400") and "Invalid to email" in email.reason
    [failed_attempt] = email.attempts.all()
    assert failed_attempt.outcome == "permanent_error" and failed_attempt.note == "falling back to inapp"
    assert inapp.reason.startswith("fallback from email: permanent error: SendGrid 400")
    [inapp_attempt] = inapp.attempts.all()
    assert inapp_attempt.note.startswith("fallback from email")
    assert (inapp_attempt.started_at - failed_attempt.started_at).total_seconds() < 10
    assert Notification.objects.get(id=notification_id).status == NotificationStatus.DELIVERED

    detail = app_api.get(f"/api/notifications/{notification_id}/").json()
    assert detail["routes"] == [["email", "inapp"]]
    assert [(d["channel"], d["status"], d["position"]) for d in detail["deliveries"]] == [
        ("email", "failed", 0), ("inapp", "sent", 1)]


def test_retries_exhausted_falls_back_to_the_next_channel(celery_worker, sendgrid, app_api, make_user):
    make_user("44", email="ada@example.com")
    sendgrid.fail_next(4, status=500)

    [notification_id] = send(app_api, recipients=["44"], channels=[["email", "inapp"]])

    inapp = wait_status(notification_id, "inapp", DeliveryStatus.SENT)
    email = Delivery.objects.get(notification_id=notification_id, channel="email")
    assert email.status == DeliveryStatus.FAILED and email.attempt_count == 4
    assert email.reason.startswith("retries exhausted (4 attempts)")
    assert [a.outcome for a in email.attempts.all()] == ["transient_error"] * 4
    assert email.attempts.last().note == "falling back to inapp"
    assert inapp.reason.startswith("fallback from email: retries exhausted")
    assert len(sendgrid.requests) == 0


def test_a_pending_channel_never_runs_after_its_predecessor_succeeded(celery_worker, sendgrid, app_api, make_user):
    make_user("45", email="ada@example.com")
    [notification_id] = send(app_api, recipients=["45"], channels=[["email", "inapp"]])
    wait_status(notification_id, "email", DeliveryStatus.SENT)
    inapp = Delivery.objects.get(notification_id=notification_id, channel="inapp")

    # A stray errback for the pending channel, twice.
    deliver_inapp.delay(str(inapp.id))
    deliver_inapp.delay(str(inapp.id))

    wait_until(lambda: celery_worker.log().count(f"delivery {inapp.id} stays pending") == 2, message="both refused")
    inapp.refresh_from_db()
    assert inapp.status == DeliveryStatus.PENDING and inapp.attempt_count == 0 and not inapp.attempts.exists()


def test_a_duplicate_errback_sends_nothing_twice(celery_worker, sendgrid, app_api, make_user):
    make_user("46", email="bad@example.com")
    sendgrid.fail_next(status=400)
    [notification_id] = send(app_api, recipients=["46"], channels=[["email", "inapp"]])
    inapp = wait_status(notification_id, "inapp", DeliveryStatus.SENT)

    deliver_inapp.delay(str(inapp.id))
    deliver_inapp.delay(str(inapp.id))

    wait_until(lambda: celery_worker.log().count(f"delivery {inapp.id} is sent, not queued") == 2, message="no-ops")
    inapp.refresh_from_db()
    assert inapp.attempt_count == 1 and inapp.attempts.count() == 1


def test_whole_chain_fails_then_a_redrive_succeeds(celery_worker, sendgrid, app_api, make_user):
    make_user("47", email="ada@example.com")
    operator = make_user("ops", is_staff=True)
    staff = APIClient()
    staff.force_authenticate(operator)
    sendgrid.fail_next(status=403, body=b'{"errors":[{"message":"sender not verified"}]}')

    [notification_id] = send(app_api, recipients=["47"], channels=["email"])

    wait_until(lambda: Notification.objects.filter(id=notification_id, status=NotificationStatus.FAILED).exists(),
               message="notification failed")
    email = Delivery.objects.get(notification_id=notification_id)
    letters = staff.get("/api/dead-letters/", {"channel": "email"}).json()["results"]
    [letter] = [item for item in letters if item["id"] == str(email.id)]
    assert letter["status"] == "failed" and "sender not verified" in letter["reason"]
    assert letter["notification"] == notification_id and letter["recipient"] == "47"

    # The provider is fixed; the operator re-drives.
    response = staff.post(f"/api/deliveries/{email.id}/redrive/")
    assert response.status_code == 202 and response.json() == {"id": str(email.id), "status": "queued"}

    email = wait_status(notification_id, "email", DeliveryStatus.SENT)
    assert [a.outcome for a in email.attempts.all()] == ["permanent_error", "sent"]
    assert email.reason == "re-driven by staff ops"
    assert Notification.objects.get(id=notification_id).status == NotificationStatus.DELIVERED
    assert str(email.id) not in [item["id"] for item in staff.get("/api/dead-letters/").json()["results"]]


def test_provider_outage_opens_the_circuit_and_a_probe_closes_it(celery_worker, sendgrid, app_api, make_user):
    make_user("48", email="ada@example.com")
    sendgrid.fail_next(4, status=503)

    [first] = send(app_api, recipients=["48"], channels=["email"])
    wait_status(first, "email", DeliveryStatus.FAILED)
    assert breaker("sendgrid").state() == "open"
    assert len(sendgrid.received) == 4

    [second] = send(app_api, recipients=["48"], channels=["email"], title="While it is down")
    email = wait_status(second, "email", DeliveryStatus.SENT, timeout=40)

    attempts = list(email.attempts.all())
    assert attempts[0].outcome == "transient_error" and "circuit open" in attempts[0].error
    assert attempts[-1].outcome == "sent"
    # No call reached SendGrid while the circuit was open: only the probe that succeeded.
    assert len(sendgrid.received) == 5 and sendgrid.requests[0].json()["subject"] == "While it is down"
    assert (attempts[-1].started_at - attempts[0].started_at).total_seconds() >= 1.5
    assert breaker("sendgrid").state() == "closed"


def test_two_workers_together_stay_under_the_provider_rate_limit(
    celery_worker, second_email_worker, sendgrid, app_api, make_user
):
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
    logs = celery_worker.log() + second_email_worker.log()
    assert "over its rate limit" in logs and "not counted as an attempt" in logs
    assert "deliver_email" in second_email_worker.log() and "succeeded" in second_email_worker.log()


def test_the_same_delivery_enqueued_twice_concurrently_is_sent_once(
    celery_worker, second_email_worker, sendgrid, make_user
):
    user = make_user("49", email="ada@example.com")
    rows = [chain(user, ("email", DeliveryStatus.QUEUED), title=f"Twice {n}")[1][0] for n in range(4)]
    sendgrid.fail_next(8, status=0, delay=0.5)  # slow answers keep both copies in flight together

    for row in rows:
        deliver_email.delay(str(row.id))
        deliver_email.delay(str(row.id))

    wait_until(lambda: Delivery.objects.filter(id__in=[r.id for r in rows], status=DeliveryStatus.SENT).count() == 4,
               timeout=40, message="all sent")

    def refused(row):
        lines = (celery_worker.log() + second_email_worker.log()).splitlines()
        return any(str(row.id) in line and ("nothing to do" in line or "already claimed" in line) for line in lines)

    wait_until(lambda: all(refused(row) for row in rows), timeout=20, message="every duplicate refused")
    sent_ids = [request.json()["personalizations"][0]["custom_args"]["delivery_id"] for request in sendgrid.requests]
    assert sorted(sent_ids) == sorted(str(row.id) for row in rows)
    for row in rows:
        row.refresh_from_db()
        assert row.attempt_count == 1


def test_enqueue_deliveries_builds_the_chain_from_the_rows(celery_worker, sendgrid, make_user):
    """What the reaper and dispatch use: a queued head with its pending chain behind it."""
    user = make_user("50", email="ada@example.com")
    notification, (email, inapp) = chain(user, ("email", DeliveryStatus.QUEUED), ("inapp", DeliveryStatus.PENDING))
    sendgrid.fail_next(status=400)

    enqueue_deliveries([email])

    inapp = wait_status(notification.id, "inapp", DeliveryStatus.SENT)
    assert inapp.reason.startswith("fallback from email")
