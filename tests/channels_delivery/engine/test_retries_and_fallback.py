"""The delivery engine end to end: real workers, the real SendGrid SDK, the fake SendGrid."""

import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from channels_delivery.engine import fallback
from channels_delivery.engine.circuit import breaker
from channels_delivery.engine.fallback import enqueue_deliveries, stalled_fallbacks
from channels_delivery.engine.tasks import DELIVERY_TASKS
from notifications.models import Delivery, DeliveryStatus, Notification, NotificationStatus, RecipientProfile
from tests.support import chain, send, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


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
    assert Notification.objects.get(id=notification_id).status == NotificationStatus.SENT


def test_permanent_error_falls_back_to_the_next_channel_at_once(celery_worker, sendgrid, app_api, make_user):
    make_user("43", email="bad@example.com")
    sendgrid.fail_next(status=400, body=b'{"errors":[{"message":"Invalid to email"}]}')

    [notification_id] = send(app_api, recipients=["43"], channels=[["email", "inapp"]])

    inapp = wait_status(notification_id, "inapp", DeliveryStatus.DELIVERED)
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
        ("email", "failed", 0), ("inapp", "delivered", 1)]


def test_retries_exhausted_falls_back_to_the_next_channel(celery_worker, sendgrid, app_api, make_user):
    make_user("44", email="ada@example.com")
    sendgrid.fail_next(4, status=500)

    [notification_id] = send(app_api, recipients=["44"], channels=[["email", "inapp"]])

    inapp = wait_status(notification_id, "inapp", DeliveryStatus.DELIVERED)
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
    DELIVERY_TASKS["inapp"].delay(str(inapp.id))
    DELIVERY_TASKS["inapp"].delay(str(inapp.id))

    wait_until(lambda: celery_worker.log().count(f"delivery {inapp.id} stays pending") == 2, message="both refused")
    inapp.refresh_from_db()
    assert inapp.status == DeliveryStatus.PENDING and inapp.attempt_count == 0 and not inapp.attempts.exists()


def test_a_duplicate_errback_sends_nothing_twice(celery_worker, sendgrid, app_api, make_user):
    make_user("46", email="bad@example.com")
    sendgrid.fail_next(status=400)
    [notification_id] = send(app_api, recipients=["46"], channels=[["email", "inapp"]])
    inapp = wait_status(notification_id, "inapp", DeliveryStatus.DELIVERED)

    DELIVERY_TASKS["inapp"].delay(str(inapp.id))
    DELIVERY_TASKS["inapp"].delay(str(inapp.id))

    wait_until(lambda: celery_worker.log().count(f"delivery {inapp.id} is delivered, not queued") == 2, message="no-ops")
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
    outcomes = [(a.outcome, a.error) for a in email.attempts.all()]
    assert [outcome for outcome, _error in outcomes] == ["permanent_error", "sent"], outcomes
    assert email.reason == "re-driven by staff ops"
    assert Notification.objects.get(id=notification_id).status == NotificationStatus.SENT
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


def test_enqueue_deliveries_builds_the_chain_from_the_rows(celery_worker, sendgrid, make_user):
    """What the reaper and dispatch use: a queued head with its pending chain behind it."""
    user = make_user("50", email="ada@example.com")
    notification, (email, inapp) = chain(user, ("email", DeliveryStatus.QUEUED), ("inapp", DeliveryStatus.PENDING))
    sendgrid.fail_next(status=400)

    enqueue_deliveries([email])

    inapp = wait_status(notification.id, "inapp", DeliveryStatus.DELIVERED)
    assert inapp.reason.startswith("fallback from email")


def test_an_open_circuit_falls_back_to_the_next_channel_at_once(celery_worker, sendgrid, app_api, make_user):
    make_user("51", email="ada@example.com")
    while breaker("sendgrid").state() != "open":
        breaker("sendgrid").record_failure()  # the outage other workers already saw

    [notification_id] = send(app_api, recipients=["51"], channels=[["email", "inapp"]])

    inapp = wait_status(notification_id, "inapp", DeliveryStatus.DELIVERED)
    email = Delivery.objects.get(notification_id=notification_id, channel="email")
    assert email.status == DeliveryStatus.FAILED and email.attempt_count == 1
    assert email.reason.startswith("circuit open, falling back")
    assert "circuit open" in email.attempts.get().error
    assert inapp.reason.startswith("fallback from email: circuit open")
    assert sendgrid.received == []


def test_retry_after_from_the_provider_is_honoured(celery_worker, sendgrid, app_api, make_user):
    make_user("52", email="ada@example.com")
    sendgrid.fail_next(status=429, headers={"Retry-After": "2"}, body=b'{"errors":[{"message":"too many"}]}')

    [notification_id] = send(app_api, recipients=["52"], channels=["email"])

    email = wait_status(notification_id, "email", DeliveryStatus.SENT)
    first, second = email.attempts.all()
    assert first.provider_status_code == "429" and first.note == "retry 1 in 2.00s"
    assert (second.started_at - first.started_at).total_seconds() >= 1.9


def test_a_wait_beyond_the_broker_limit_is_parked_in_postgres_for_the_reaper(
    celery_worker, sendgrid, app_api, make_user
):
    make_user("53", email="ada@example.com")
    sendgrid.fail_next(status=429, headers={"Retry-After": "7200"})

    [notification_id] = send(app_api, recipients=["53"], channels=["email"])

    email = wait_until(lambda: Delivery.objects.filter(notification_id=notification_id, next_retry_at__isnull=False,
                                                      status=DeliveryStatus.RETRYING).first(), message="parked")
    wait_until(lambda: f"delivery {email.id} parked" in celery_worker.log(), message="parked log line")
    delay = (email.next_retry_at - email.attempts.get().started_at).total_seconds()
    assert 7190 <= delay <= 7210  # no broker countdown of two hours: it waits in the row

    # What the reaper does once next_retry_at has come: enqueue the retrying row again.
    enqueue_deliveries([email])

    email = wait_status(notification_id, "email", DeliveryStatus.SENT)
    assert email.attempt_count == 2 and email.next_retry_at is None


def test_a_fallback_whose_errback_was_lost_is_found_and_resumed(celery_worker, sendgrid, make_user):
    user = make_user("54", email="ada@example.com")
    notification, (email, inapp) = chain(user, ("email", DeliveryStatus.FAILED, {"reason": "permanent error: 400"}),
                                         ("inapp", DeliveryStatus.PENDING))
    _n2, (sent, waiting) = chain(user, ("email", DeliveryStatus.SENT), ("inapp", DeliveryStatus.PENDING))
    Delivery.objects.filter(id__in=[email.id, sent.id]).update(updated_at=timezone.now() - timedelta(minutes=10))

    stalled = stalled_fallbacks(older_than=timezone.now() - timedelta(minutes=5))
    assert [row.id for row in stalled] == [inapp.id]  # not the one whose predecessor got through

    enqueue_deliveries(stalled)

    inapp = wait_status(notification.id, "inapp", DeliveryStatus.DELIVERED)
    assert inapp.reason == "fallback from email: permanent error: 400"
    assert Delivery.objects.get(id=waiting.id).status == DeliveryStatus.PENDING


def test_an_expired_notification_is_not_sent_by_any_channel_of_its_chain(celery_worker, sendgrid, make_user):
    user = make_user("55", email="ada@example.com")
    notification, (email, inapp) = chain(user, ("email", DeliveryStatus.FAILED), ("inapp", DeliveryStatus.PENDING))
    Notification.objects.filter(id=notification.id).update(expires_at=timezone.now() + timedelta(seconds=1))
    time.sleep(1.2)  # expires while its fallback is on the way: the message leaves before, runs after

    fallback.chain_signature([inapp]).apply_async()  # no expires on the message: the row decides

    inapp = wait_status(notification.id, "inapp", DeliveryStatus.SKIPPED)
    assert inapp.reason == "expired" and inapp.attempts.get().outcome == "skipped"


@pytest.fixture
def twilio(fake_providers):
    fake = fake_providers["twilio"]
    fake.reset()
    yield fake
    fake.reset()


def test_a_chain_hops_twice_through_nested_errbacks(celery_worker, sendgrid, twilio, app_api, make_user):
    user = make_user("56", email="ada@example.com")
    RecipientProfile.objects.create(user=user, phone="+14155550123")
    twilio.invalid_numbers.add("+14155550123")
    sendgrid.fail_next(status=400, body=b'{"errors":[{"message":"Invalid to email"}]}')

    [notification_id] = send(app_api, recipients=["56"], channels=[["sms", "email", "inapp"]])

    inapp = wait_status(notification_id, "inapp", DeliveryStatus.DELIVERED)
    rows = deliveries_of(notification_id)
    assert rows["sms"].status == DeliveryStatus.FAILED and "21211" in rows["sms"].reason
    assert rows["email"].status == DeliveryStatus.FAILED
    assert rows["email"].reason.startswith("permanent error: SendGrid 400")
    email_note = rows["email"].attempts.get().note
    assert email_note.startswith("fallback from sms") and email_note.endswith("; falling back to inapp")
    assert inapp.reason.startswith("fallback from email: permanent error")
    assert [(a.note.split(":")[0]) for a in rows["sms"].attempts.all()] == ["falling back to email"]
    assert Notification.objects.get(id=notification_id).status == NotificationStatus.DELIVERED


def test_configured_routes_for_urgent_run_side_by_side(celery_worker, sendgrid, twilio, app_api, make_user):
    user = make_user("57", email="ada@example.com")
    RecipientProfile.objects.create(user=user, phone="+14155550124")

    [notification_id] = send(app_api, recipients=["57"], priority="urgent")  # no channels: NOTIFY_ROUTES

    wait_status(notification_id, "inapp", DeliveryStatus.DELIVERED)
    wait_status(notification_id, "sms", DeliveryStatus.SENT)
    rows = deliveries_of(notification_id)
    assert [(d.channel, d.route, d.position) for d in Delivery.objects.filter(notification_id=notification_id)] == [
        ("inapp", 0, 0), ("push", 1, 0), ("sms", 1, 1), ("email", 1, 2)]
    assert rows["push"].status == DeliveryStatus.SKIPPED and rows["push"].reason == "no contact point"
    assert rows["email"].status == DeliveryStatus.PENDING  # sms got through: email never runs
    assert len(twilio.requests) == 1 and sendgrid.received == []
