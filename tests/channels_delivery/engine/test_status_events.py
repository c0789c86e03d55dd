"""Status events for sending apps: an API client's status webhook receives every status change of
its notifications, verified by a receiver using the `standardwebhooks` library; retries by policy,
a dead-letter list of its own, and none lost when the worker sending them is killed."""

import os
import signal
import time
from collections import Counter

import pytest
from django.utils import timezone

from channels_delivery.engine import status_events
from notifications.models import ApiClient, Category, Delivery, Notification, StatusEvent, StatusWebhook

from tests.support.workers import WorkerProcess
from tests.support import reset_engine_state, send, wait_until


@pytest.fixture
def receiver(fakes, channel_settings):
    return fakes["webhook"]


def register(app_api, receiver, **extra):
    """Register a status webhook at a fresh receiver path; the receiver verifies with its secret."""
    url = receiver.endpoint("whsec_placeholder")
    response = app_api.post("/api/status-webhooks/", {"url": url, **extra}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    receiver.secrets[url.removeprefix(receiver.url)] = body["secret"]
    return body


def received(receiver):
    """Verified events as (webhook-id, type, delivery id or None)."""
    return [(headers["webhook-id"], payload["type"], payload["data"].get("delivery_id"))
            for _path, payload, headers in list(receiver.events)]


# --- API --------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_registering_shows_the_secret_once_and_checks_input(app_api, receiver, user_api, make_user):
    body = register(app_api, receiver, event_types=["delivery.delivered", "notification.read"])
    assert body["secret"].startswith("whsec_") and body["event_types"] == ["delivery.delivered", "notification.read"]
    [listed] = app_api.get("/api/status-webhooks/").json()["results"] or [None]
    assert listed["id"] == body["id"] and "secret" not in listed

    bad = app_api.post("/api/status-webhooks/", {"url": "ftp://x", "event_types": ["delivery.lost"]}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"url", "event_types"}
    private = app_api.post("/api/status-webhooks/", {"url": "http://10.0.0.7/hook"}, format="json")
    assert private.status_code == 400 and "url" in private.json()["error"]["fields"]
    # an end user has no status webhooks; another client does not see this one
    assert user_api(make_user("enduser")).get("/api/status-webhooks/").status_code == 403
    other = ApiClient.issue("Other", make_user("other-owner"), scopes=["send", "read"])[1]
    app_api.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert app_api.get("/api/status-webhooks/").json()["results"] == []


@pytest.mark.django_db
def test_the_trigger_writes_events_only_for_the_sender_and_only_for_changes(app_api, receiver, make_user, sender_key):
    register(app_api, receiver)
    client = ApiClient.objects.get(name="Acme shop")
    notification = notification_from(client, make_user("r1"))
    notification_from(None, make_user("r0"), queued_delivery=True)  # not sent by this client: no event
    assert StatusEvent.objects.count() == 0
    delivery = Delivery.objects.create(notification=notification, channel="inapp", status="queued")
    Delivery.objects.filter(id=delivery.id).update(status="sending")  # not a reported status
    Delivery.objects.filter(id=delivery.id).update(status="sent")
    Delivery.objects.filter(id=delivery.id).update(status="sent", reason="same status again")
    types = list(StatusEvent.objects.values_list("type", "payload__data__previous_status"))
    assert types == [("delivery.queued", None), ("delivery.sent", "sending")]
    Notification.objects.filter(id=notification.id).update(read_at=timezone.now())
    Notification.objects.filter(id=notification.id).update(read_at=timezone.now())  # read once only
    assert StatusEvent.objects.filter(type="notification.read").count() == 1


def notification_from(client, user, queued_delivery=False):
    notification = Notification.objects.create(recipient=user, sender=client, title="Hi",
                                               category=Category.objects.get(key="orders"))
    if queued_delivery:
        Delivery.objects.create(notification=notification, channel="inapp", status="queued")
    return notification


# --- end to end --------------------------------------------------------------------------------

@pytest.fixture
def engine_clean():
    reset_engine_state()
    yield
    reset_engine_state()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_every_status_change_reaches_the_client_signed(celery_worker, beat, sendgrid, receiver, app_api, make_user,
                                                       user_api, engine_clean):
    register(app_api, receiver)
    user = make_user("st1", email="st1@example.com")

    [notification_id] = send(app_api, recipients=["st1"], channels=["inapp", "email"])
    # in-app is delivered the moment it is stored; email is sent (SendGrid has not confirmed)
    wait_until(lambda: set(Delivery.objects.filter(notification_id=notification_id).values_list("channel", "status"))
               == {("inapp", "delivered"), ("email", "sent")}, timeout=30, message="both out")
    deliveries = {d.channel: str(d.id) for d in Delivery.objects.filter(notification_id=notification_id)}
    assert user_api(user).put(f"/api/notifications/{notification_id}/read").status_code in (200, 204)

    expected = {("delivery.queued", deliveries["inapp"]), ("delivery.delivered", deliveries["inapp"]),
                ("delivery.queued", deliveries["email"]), ("delivery.sent", deliveries["email"]),
                ("notification.read", None)}
    wait_until(lambda: {(kind, delivery) for _, kind, delivery in received(receiver)} >= expected, timeout=30,
               message="all five events at the receiver")
    # Each was verified by standardwebhooks.Webhook(secret).verify(); the 401s it gives otherwise
    # would not be in receiver.events. The webhook-id is the event's own id.
    ids = {event_id for event_id, _, _ in received(receiver)}
    assert ids == {str(e) for e in StatusEvent.objects.values_list("event_id", flat=True)}
    wait_until(lambda: set(StatusEvent.objects.values_list("status", flat=True)) == {"sent"}, message="all sent")
    payloads = [payload for _, payload, _ in receiver.events]
    assert all(p["data"]["notification_id"] == str(notification_id) for p in payloads)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_failures_retry_by_policy_then_dead_letter_and_redrive(celery_worker, beat, receiver, app_api, make_user,
                                                               engine_clean):
    webhook = register(app_api, receiver, event_types=["delivery.delivered"])
    make_user("st2")
    # test-fixed: waits 0.2, 0.6, 1.0 s, 4 attempts. 3 failures, then the 4th try gets through.
    receiver.fail_next(3, status=503)
    [first] = send(app_api, recipients=["st2"], channels=["inapp"])
    wait_until(lambda: received(receiver), timeout=30, message="the event after 3 failures")
    # The receiver has answered; the worker records that just after.
    event = wait_until(lambda: StatusEvent.objects.filter(notification_id=first, status="sent").first(),
                       message="the event recorded as sent")
    assert event.attempt_count == 4
    assert event.retry_policy.startswith("test-fixed: fixed 0.2, 0.6, 1 s, 4 attempts")
    times = [r.received_at for r in receiver.received]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(gap >= wait - 0.05 for gap, wait in zip(gaps, [0.2, 0.6, 1.0])), gaps

    receiver.fail_next(1, status=400, body=b"no thanks")
    [second] = send(app_api, recipients=["st2"], channels=["inapp"])
    dead = wait_until(lambda: StatusEvent.objects.filter(notification_id=second, status="failed").first(),
                      timeout=30, message="dead letter")
    assert dead.attempt_count == 1 and "400" in dead.last_error

    listed = app_api.get("/api/status-webhooks/dead-letters/").json()
    assert [item["id"] for item in listed["results"]] == [dead.id]
    again = app_api.post(f"/api/status-webhooks/dead-letters/{dead.id}/redrive/")
    assert again.status_code == 202
    wait_until(lambda: StatusEvent.objects.filter(id=dead.id, status="sent").exists(), timeout=30, message="redriven")
    assert app_api.post(f"/api/status-webhooks/dead-letters/{dead.id}/redrive/").status_code == 409
    assert StatusWebhook.objects.get(id=webhook["id"]).active


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_none_lost_when_the_worker_sending_them_is_killed(celery_worker, worker_env, beat, receiver, app_api,
                                                          make_user, tmp_path, engine_clean):
    register(app_api, receiver)
    usernames = [f"k{n}" for n in range(20)]
    for name in usernames:
        make_user(name)
    # The shared worker pauses; ours: everything but webhooks, and one webhook worker to kill.
    celery_worker.stop()
    others = WorkerProcess(worker_env, tmp_path, queues=["dispatch", "inapp", "maintenance"], name="st-others")
    webhook_worker = WorkerProcess(worker_env, tmp_path, queues=["webhook"], concurrency=2, name="st-webhook")
    replacement = None
    try:
        others.start()
        webhook_worker.start()
        receiver.fail_next(200, status=0, delay=0.05)  # a slow receiver keeps events in flight
        ids = send(app_api, recipients=usernames, channels=["inapp"])
        expected = 2 * len(ids)  # queued and delivered per in-app delivery
        wait_until(lambda: len(receiver.events) >= expected // 4, timeout=60, message="a quarter arrived")
        os.killpg(webhook_worker.process.pid, signal.SIGKILL)
        webhook_worker.process.wait()
        at_kill = len(receiver.events)
        held = StatusEvent.objects.filter(status__in=["queued", "sending"]).count()
        replacement = WorkerProcess(worker_env, tmp_path, queues=["webhook"], concurrency=2,
                                    name="st-webhook-2").start()

        wait_until(lambda: len({event_id for event_id, _, _ in received(receiver)}) >= expected, timeout=90,
                   message=f"all {expected} events")
        # An event the killed worker got out but never marked is sent again once it counts as
        # stuck (NOTIFY_STATUS_EVENT_STUCK_AFTER, 3 s here): then every row is `sent`.
        wait_until(lambda: StatusEvent.objects.filter(status="sent").count() >= expected, timeout=30,
                   message="every event marked sent")
        time.sleep(1)
        counts = Counter(event_id for event_id, _, _ in received(receiver))
        duplicates = sum(count - 1 for count in counts.values())
        print(f"\nstatus events: {expected} owed, {len(counts)} distinct received, {duplicates} duplicates; "
              f"{at_kill} had arrived at the SIGKILL, {held} were queued or sending then")
        assert len(counts) == expected == StatusEvent.objects.filter(status="sent").count()
        assert duplicates <= held + 2  # only what the killed worker held can arrive twice
    finally:
        for worker in (others, webhook_worker, replacement):
            if worker is not None:
                worker.stop(signal.SIGKILL)
        celery_worker.start()


@pytest.mark.django_db
def test_enqueue_due_takes_back_only_what_is_overdue(settings, make_user, app_api, receiver):
    settings.NOTIFY_STATUS_EVENT_STUCK_AFTER = 60
    register(app_api, receiver)
    notification = notification_from(ApiClient.objects.get(name="Acme shop"), make_user("r9"))
    delivery = Delivery.objects.create(notification=notification, channel="inapp", status="queued")
    event = StatusEvent.objects.get(delivery_id=delivery.id)
    StatusEvent.objects.filter(id=event.id).update(status="sending", updated_at=timezone.now())
    assert status_events.enqueue_due() == 0  # a live send is left alone
    StatusEvent.objects.filter(id=event.id).update(updated_at=timezone.now() - timezone.timedelta(seconds=61))
    assert status_events.enqueue_due() == 1  # its message goes out on commit (none in this test)
    assert StatusEvent.objects.get(id=event.id).status == "queued"
