"""Engine parts on their own: backoff, circuit breaker and token bucket (real Redis), routes,
the channels field, the dead-letter API and re-drive."""

import email.utils
import time

import pytest
from rest_framework.test import APIClient

from channels_delivery.engine import backoff, ratelimit
from channels_delivery.engine.circuit import breaker
from notifications.models import ApiClient, Delivery, DeliveryStatus, Notification, NotificationStatus
from notifications.planning import planner
from tests.support import chain

# --- backoff ---------------------------------------------------------------

def test_backoff_grows_with_equal_jitter_and_is_capped():
    for retries in range(6):
        for _ in range(50):
            wait = backoff.countdown(retries, factor=1.0, maximum=10)
            step = min(10, 2**retries)
            assert step / 2 <= wait <= step
    assert backoff.countdown(3, factor=1.0, maximum=10, jitter=False) == 8


def test_backoff_honours_retry_after_when_longer():
    assert backoff.countdown(0, factor=1.0, maximum=10, jitter=False, retry_after="30") == 30
    assert backoff.countdown(5, factor=1.0, maximum=10, jitter=False, retry_after=2) == 10
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= backoff.countdown(0, factor=1.0, maximum=10, jitter=False, retry_after=in_a_minute) <= 61
    assert backoff.countdown(0, factor=1.0, maximum=10, jitter=False, retry_after="soon") == 1


# --- circuit breaker (state in the test Redis) ---------------------------------

@pytest.fixture
def fast_circuit(settings):
    settings.NOTIFY_CIRCUIT_FAILURES = 3
    settings.NOTIFY_CIRCUIT_WINDOW = 30
    settings.NOTIFY_CIRCUIT_OPEN_SECONDS = 0.3
    settings.NOTIFY_CIRCUIT_PROBE_SECONDS = 5


def test_circuit_opens_after_failures_and_one_probe_closes_it(fast_circuit):
    circuit, other_worker = breaker("acme"), breaker("acme")
    for _ in range(2):
        circuit.record_failure()
    assert circuit.state() == "closed" and circuit.allow()
    circuit.record_failure()
    assert circuit.state() == "open" and not circuit.allow() and other_worker.is_open()
    assert 0 < circuit.remaining() <= 0.3

    time.sleep(0.35)
    assert circuit.state() == "half_open" and not circuit.is_open()
    assert circuit.allow()  # this worker probes...
    assert not other_worker.allow() and other_worker.is_open()  # ...and no one else meanwhile
    circuit.record_success()
    assert circuit.state() == "closed" and other_worker.allow()


def test_a_failed_probe_opens_the_circuit_again(fast_circuit):
    circuit = breaker("acme")
    for _ in range(3):
        circuit.record_failure()
    time.sleep(0.35)
    assert circuit.allow()
    assert circuit.record_failure() == "open"
    assert circuit.state() == "open" and not circuit.allow()


def test_circuits_are_per_provider(fast_circuit):
    for _ in range(3):
        breaker("acme").record_failure()
    assert breaker("acme").state() == "open" and breaker("other").state() == "closed"


# --- token bucket ---------------------------------------------------------------

def test_token_bucket_allows_the_burst_then_the_rate(settings):
    settings.NOTIFY_RATE_LIMITS = {"acme": (5.0, 2)}
    assert ratelimit.take("acme", "d1") == 0 and ratelimit.take("acme", "d2") == 0
    assert 0.1 < ratelimit.take("acme", "d3", reserve=False) <= 0.2  # just asking books nothing
    assert ratelimit.take("unlimited", "d1") == 0


def test_waiting_deliveries_book_successive_slots_and_spend_no_second_token(settings):
    settings.NOTIFY_RATE_LIMITS = {"acme": (5.0, 1)}
    assert ratelimit.take("acme", "first") == 0
    waits = [ratelimit.take("acme", holder) for holder in ["a", "b", "c"]]
    # Each waiter gets its own slot, one token interval (0.2 s) after the one before.
    assert [round(wait, 1) for wait in waits] == [0.2, 0.4, 0.6]
    assert 0.1 < ratelimit.take("acme", "a") <= 0.2  # too early: still waiting for its slot
    time.sleep(waits[0] + 0.01)
    assert ratelimit.take("acme", "a") == 0  # its slot: goes through on the booked token
    assert ratelimit.take("acme", "a") > 0.5  # a further call needs a new token, after c's slot


def test_a_holder_late_for_its_slot_books_again(settings):
    settings.NOTIFY_RATE_LIMITS = {"acme": (10.0, 1)}
    assert ratelimit.take("acme", "first") == 0
    assert 0.05 < ratelimit.take("acme", "late") <= 0.1
    time.sleep(0.5)  # its slot (0.1 s) plus more than the grace of one interval
    assert ratelimit.take("acme", "late") == 0  # the bucket has refilled meanwhile: a fresh token
    assert ratelimit.take("acme", "next") > 0  # ...which it spent: no bunching behind the late one


# --- routes ---------------------------------------------------------------------

@pytest.mark.django_db
def test_routes_come_from_category_then_priority_then_default(settings, make_user):
    settings.NOTIFY_ROUTES = {
        "categories": {"system": {"urgent": [["sms", "email"]], "default": [["email"]]}, "messages": [["inapp"]]},
        "priorities": {"urgent": [["inapp"], ["push", "sms", "email"]]},
        "default": [["inapp"], ["email"]],
    }
    user = make_user("70")

    def routes(category, priority, **extra):
        return planner.routes_for(Notification(recipient=user, category_id=category, priority=priority, **extra))

    assert routes("system", "urgent") == [["sms", "email"]]
    assert routes("system", "low") == [["email"]]
    assert routes("messages", "urgent") == [["inapp"]]
    assert routes("orders", "urgent") == [["inapp"], ["push", "sms", "email"]]
    assert routes("orders", "low") == [["inapp"], ["email"]]
    assert routes("orders", "urgent", routes=[["email", "inapp"]]) == [["email", "inapp"]]


@pytest.mark.django_db
def test_a_chain_plans_its_head_queued_and_the_rest_pending(make_user):
    user = make_user("71", email="ada@example.com")
    notification = Notification.objects.create(
        recipient=user, category_id="orders", title="Hi", routes=[["push", "email", "inapp"]]
    )
    planned = [(d.channel, d.route, d.position, d.status, d.reason) for d in planner.plan(notification)]
    assert planned == [
        ("push", 0, 0, "skipped", "no contact point"),
        ("email", 0, 1, "queued", ""),
        ("inapp", 0, 2, "pending", ""),
    ]


# --- the API's channels field ------------------------------------------------------

@pytest.mark.django_db
def test_channels_accept_fallback_chains(app_api, make_user):
    make_user("72")
    response = app_api.post("/api/notifications/", {"recipients": ["72"], "category": "orders", "title": "Hi",
                                                    "channels": ["inapp", ["push", "sms", "email"], "inapp"]},
                            format="json")
    assert response.status_code == 202, response.content
    notification = Notification.objects.get(id=response.json()["ids"][0])
    assert notification.routes == [["inapp"], ["push", "sms", "email"]]
    assert notification.channels == ["inapp", "push", "sms", "email"]


@pytest.mark.django_db
@pytest.mark.parametrize("channels", [[["email", 3]], [[]], [{"email": 1}], [["email", "pigeon"]], [7], [None]])
def test_bad_channel_shapes_are_field_errors(app_api, make_user, channels):
    make_user("73")
    response = app_api.post("/api/notifications/", {"recipients": ["73"], "category": "orders", "title": "Hi",
                                                    "channels": channels}, format="json")
    assert response.status_code == 400, response.content
    assert "channels" in response.json()["error"]["fields"]
    assert not Notification.objects.exists()


# --- dead letters and re-drive ---------------------------------------------------------

@pytest.fixture
def staff_api(make_user):
    client = APIClient()
    client.force_authenticate(make_user("ops", is_staff=True))
    return client


def key_client(make_user, scopes):
    _client, key = ApiClient.issue("ops tool", make_user(f"owner-{'-'.join(scopes)}"), scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def failed_chains(make_user):
    user = make_user("74", email="ada@example.com")
    # email failed but inapp got through: not a dead letter; the sms chain ended failed: one.
    _n1, [email, _inapp] = chain(user, ("email", DeliveryStatus.FAILED, {"reason": "permanent error: 400"}),
                                 ("inapp", DeliveryStatus.SENT))
    _n2, [sms_head, last] = chain(user, ("sms", DeliveryStatus.FAILED), ("email", DeliveryStatus.FAILED,
                                                                          {"reason": "retries exhausted"}))
    return email, sms_head, last


@pytest.mark.django_db
def test_dead_letters_list_the_ends_of_failed_chains(staff_api, failed_chains):
    _email, _sms_head, last = failed_chains
    body = staff_api.get("/api/dead-letters/").json()
    assert [item["id"] for item in body["results"]] == [str(last.id)]
    assert body["results"][0]["reason"] == "retries exhausted" and body["total"] == 1
    assert staff_api.get("/api/dead-letters/", {"channel": "sms"}).json()["total"] == 0
    assert staff_api.get("/api/dead-letters/", {"since": "2000-01-01T00:00:00Z"}).json()["total"] == 1
    assert staff_api.get("/api/dead-letters/", {"since": "2999-01-01T00:00:00Z"}).json()["total"] == 0


@pytest.mark.django_db
def test_dead_letter_filters_are_validated(staff_api):
    response = staff_api.get("/api/dead-letters/", {"channel": "pigeon", "since": "yesterday"})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"channel", "since"}


@pytest.mark.django_db
def test_dead_letters_and_redrive_need_an_operator(app_api, make_user, failed_chains):
    _email, _sms_head, last = failed_chains
    user = APIClient()
    user.force_authenticate(make_user("enduser"))
    for client in [app_api, user, key_client(make_user, ["send", "read"])]:
        assert client.get("/api/dead-letters/").status_code == 403
        assert client.post(f"/api/deliveries/{last.id}/redrive/").status_code == 403
    assert APIClient().get("/api/dead-letters/").status_code in (401, 403)
    assert key_client(make_user, ["admin"]).get("/api/dead-letters/").status_code == 200
    assert Delivery.objects.get(id=last.id).status == DeliveryStatus.FAILED


@pytest.mark.django_db
def test_redrive_requeues_the_delivery_and_rearms_the_rest_of_its_chain(
    staff_api, failed_chains, django_capture_on_commit_callbacks
):
    _email, sms_head, last = failed_chains
    Notification.objects.filter(id=sms_head.notification_id).update(status=NotificationStatus.FAILED)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_api.post(f"/api/deliveries/{sms_head.id}/redrive/")

    assert response.status_code == 202 and response.json()["status"] == "queued"
    sms_head.refresh_from_db(), last.refresh_from_db()
    assert sms_head.status == DeliveryStatus.QUEUED and sms_head.reason == "re-driven by staff ops"
    assert last.status == DeliveryStatus.PENDING and last.reason == "waiting: chain re-driven from sms"
    assert Notification.objects.get(id=sms_head.notification_id).status == NotificationStatus.DISPATCHED
    assert len(callbacks) == 1  # the enqueue, after commit


@pytest.mark.django_db
def test_redrive_refuses_what_is_not_failed(staff_api, make_user):
    _n, [sent] = chain(make_user("75"), ("inapp", DeliveryStatus.SENT))
    response = staff_api.post(f"/api/deliveries/{sent.id}/redrive/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"
    missing = staff_api.post("/api/deliveries/9a4e2a7c-0000-4000-8000-000000000000/redrive/")
    assert missing.status_code == 404


@pytest.mark.django_db
def test_admin_action_redrives_selected_deliveries(client, make_user, failed_chains, django_capture_on_commit_callbacks):
    email, _sms_head, last = failed_chains
    admin_user = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=False):
        # The action asks for a reason first (recorded in the audit trail), then re-drives.
        response = client.post("/admin/notifications/delivery/", {
            "action": "redrive", "_selected_action": [str(last.id), str(email.id)],
            "apply": "1", "reason": "provider back",
        }, follow=True)

    assert response.status_code == 200
    assert Delivery.objects.get(id=last.id).status == DeliveryStatus.QUEUED
    assert Delivery.objects.get(id=email.id).status == DeliveryStatus.QUEUED
    assert "2 re-driven." in response.content.decode()
