"""Operators: API clients, the deliveries list, resend, the analytics summary; throttling."""

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import (
    ApiClient,
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    QuietHours,
    Resend,
)
from notifications.tenancy import grant
from tests.support import in_a_fresh_window

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(make_user, user_api):
    """Staff allowed to manage API clients (a Django permission: being staff is not enough)."""
    from django.contrib.auth.models import Permission

    staff = make_user("operator", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["add_apiclient", "change_apiclient"]))
    return user_api(staff)


@pytest.fixture
def ada(make_user):
    return make_user("ada", email="ada@example.com")


def key_api(key):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api


# --- API clients ---------------------------------------------------------------------------

def test_operator_creates_a_client_whose_key_is_shown_once(operator, ada):
    response = operator.post("/api/clients/", {"name": "Shop", "owner": "ada", "scopes": ["send"]}, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["key"].startswith(f"nk_{created['key_prefix']}.")
    client = ApiClient.objects.get(id=created["id"])
    assert created["key"] not in client.key_hash and client.owner == ada and client.scopes == ["send"]

    listing = operator.get("/api/clients/").json()
    assert "key" not in listing["results"][0] and "key_hash" not in listing["results"][0]
    assert "key" not in operator.get(f"/api/clients/{client.id}/").json()
    # The new key works: it onboards a recipient of its own and sends to it.
    assert key_api(created["key"]).put("/api/recipients/shopper-1/", {}, format="json").status_code == 201
    sent = key_api(created["key"]).post(
        "/api/notifications/", {"recipients": ["shopper-1"], "category": "orders", "title": "Hi"}, format="json"
    )
    assert sent.status_code == 202


def test_revoked_key_stops_working(operator, sender_key):
    client = ApiClient.objects.get()
    assert key_api(sender_key).get("/api/notifications/").status_code == 200
    response = operator.post(f"/api/clients/{client.id}/revoke/")
    assert response.status_code == 200 and response.json()["active"] is False
    assert key_api(sender_key).get("/api/notifications/").status_code == 401


@pytest.mark.parametrize(
    "body, field",
    [({"name": "x", "scopes": ["root"]}, "scopes"), ({"name": "x", "owner": "nobody"}, "owner"), ({}, "name"),
     ({"name": "x", "scopes": []}, "scopes")],
)
def test_bad_client_is_a_field_error(operator, body, field):
    response = operator.post("/api/clients/", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_clients_are_for_operators_only(user_api, app_api, ada):
    assert user_api(ada).get("/api/clients/").status_code == 403
    assert app_api.post("/api/clients/", {"name": "mine"}, format="json").status_code == 403


def test_api_key_scopes(make_user):
    make_user("42")
    sender, send_only = ApiClient.issue("Sender", make_user("sender-app"), scopes=["send"])
    _client, read_only = ApiClient.issue("Reader", make_user("reader-app"), scopes=["read"])
    grant(sender, User.objects.filter(username="42"))
    body = {"recipients": ["42"], "category": "orders", "title": "Hi"}
    assert key_api(send_only).post("/api/notifications/", body, format="json").status_code == 202
    assert key_api(send_only).get("/api/notifications/").status_code == 403
    assert key_api(read_only).get("/api/notifications/").status_code == 200
    assert key_api(read_only).post("/api/notifications/", body, format="json").status_code == 403


def test_admin_scope_key_is_an_operator(make_user):
    _client, key = ApiClient.issue("Ops tool", make_user("ops-app"), scopes=["admin"])
    assert key_api(key).get("/api/clients/").status_code == 200


# --- deliveries ------------------------------------------------------------------------------

def make_notification(user, channels=(), **fields):
    return Notification.objects.create(
        recipient=user, category_id="orders", title="Hi", routes=[[channel] for channel in channels], **fields
    )


def test_deliveries_with_filters(operator, ada):
    first, second = make_notification(ada), make_notification(ada)
    Delivery.objects.create(notification=first, channel="email", provider="sendgrid", status="sent")
    Delivery.objects.create(notification=first, channel="inapp", provider="inbox", status="failed")
    Delivery.objects.create(notification=second, channel="email", provider="smtp", status="failed")

    def channels(**params):
        response = operator.get("/api/deliveries/", params)
        assert response.status_code == 200, response.content
        return sorted((d["channel"], d["provider"]) for d in response.json()["results"])

    assert len(channels()) == 3
    assert channels(status="failed") == [("email", "smtp"), ("inapp", "inbox")]
    assert channels(channel="email", provider="smtp") == [("email", "smtp")]
    assert channels(notification=str(first.id)) == [("email", "sendgrid"), ("inapp", "inbox")]
    assert channels(since=(timezone.now() + timezone.timedelta(minutes=1)).isoformat()) == []
    bad = operator.get("/api/deliveries/", {"status": "lost", "notification": "nope"})
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"status", "notification"}


def test_deliveries_are_for_operators_only(user_api, app_api, ada):
    assert user_api(ada).get("/api/deliveries/").status_code == 403
    assert app_api.get("/api/deliveries/").status_code == 403


# --- resend ------------------------------------------------------------------------------------

def test_resend_requeues_failed_and_skipped_channels(operator, ada, django_capture_on_commit_callbacks):
    notification = make_notification(ada, status=NotificationStatus.FAILED, channels=["email", "inapp"])
    email = Delivery.objects.create(notification=notification, channel="email", status="failed", route=0,
                                    last_error="SendGrid 500", attempt_count=6)
    inapp = Delivery.objects.create(notification=notification, channel="inapp", status="skipped", route=1,
                                    reason="no contact point")

    with django_capture_on_commit_callbacks() as callbacks:
        response = operator.post(f"/api/notifications/{notification.id}/resend/",
                                 {"reason": "SendGrid outage over"}, format="json")

    assert response.status_code == 202, response.content
    assert sorted(response.json()["channels"]) == ["email", "inapp"]
    assert len(callbacks) == 1  # the deliveries are enqueued after commit
    email.refresh_from_db()
    inapp.refresh_from_db()
    assert email.status == inapp.status == DeliveryStatus.QUEUED
    assert email.last_error == "" and email.attempt_count == 6  # attempts continue the same log
    assert email.message["to"] == "ada@example.com"
    record = Resend.objects.get()
    assert record.reason == "SendGrid outage over" and record.requested_by.username == "operator"
    assert Notification.objects.get(id=notification.id).status == NotificationStatus.DISPATCHED


def test_resend_leaves_routes_that_got_through(operator, ada):
    notification = make_notification(ada, status=NotificationStatus.DELIVERED)
    Delivery.objects.create(notification=notification, channel="email", status="sent", route=0, position=0)
    Delivery.objects.create(notification=notification, channel="inapp", status="failed", route=0, position=1)
    response = operator.post(f"/api/notifications/{notification.id}/resend/", {"reason": "why not"}, format="json")
    assert response.status_code == 409
    assert Resend.objects.count() == 0


def test_resend_needs_a_reason_and_an_operator(operator, app_api, user_api, ada):
    notification = make_notification(ada)
    url = f"/api/notifications/{notification.id}/resend/"
    assert operator.post(url, {}, format="json").json()["error"]["fields"]["reason"]
    assert user_api(ada).post(url, {"reason": "x"}, format="json").status_code == 403
    assert app_api.post(url, {"reason": "x"}, format="json").status_code == 403


# --- analytics --------------------------------------------------------------------------------

def test_summary_per_channel_and_provider(operator, ada):
    now = timezone.now()
    for seconds, status in [(1, "sent"), (2, "delivered"), (3, "delivered"), (4, "bounced")]:
        notification = make_notification(ada, created_at=now - timezone.timedelta(seconds=10))
        Delivery.objects.create(notification=notification, channel="email", provider="sendgrid", status=status,
                                sent_at=notification.created_at + timezone.timedelta(seconds=seconds))
    failed = make_notification(ada)
    Delivery.objects.create(notification=failed, channel="email", provider="sendgrid", status="failed")
    Delivery.objects.create(notification=failed, channel="inapp", provider="inbox", status="sent",
                            sent_at=failed.created_at + timezone.timedelta(milliseconds=50))

    response = operator.get("/api/analytics/summary/")

    assert response.status_code == 200, response.content
    rows = {(row["channel"], row["provider"]): row for row in response.json()["channels"]}
    email = rows[("email", "sendgrid")]
    assert (email["total"], email["sent"], email["delivered"], email["failed"]) == (5, 4, 2, 2)
    assert email["success_rate"] == 0.6
    assert email["latency_ms"]["p50"] == pytest.approx(2500, abs=1)
    assert email["latency_ms"]["p99"] == pytest.approx(3970, abs=1)
    assert rows[("inapp", "inbox")]["latency_ms"]["p95"] == pytest.approx(50, abs=1)


def test_summary_window(operator, ada):
    notification = make_notification(ada)
    Delivery.objects.create(notification=notification, channel="email", provider="smtp", status="sent")
    past = {"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"}
    assert operator.get("/api/analytics/summary/", past).json()["channels"] == []
    bad = operator.get("/api/analytics/summary/", {"since": "2020-01-02T00:00:00Z", "until": "2020-01-01T00:00:00Z"})
    assert bad.status_code == 400 and "since" in bad.json()["error"]["fields"]
    assert operator.get("/api/analytics/summary/", {"since": "last week"}).status_code == 400


# --- throttling --------------------------------------------------------------------------------

def test_throttled_per_client_with_the_error_format(app_api, settings, make_user, user_api):
    settings.NOTIFY_THROTTLE_RATES = {"client": "3/minute", "user": "100/minute"}
    in_a_fresh_window()
    answers = [app_api.get("/api/notifications/").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    response = app_api.get("/api/notifications/")
    assert response.json()["error"]["code"] == "throttled" and int(response["Retry-After"]) > 0
    # Another caller has its own budget.
    assert user_api(make_user("bob")).get("/api/notifications/").status_code == 200


def test_resend_is_traced_for_explain(operator, ada):
    notification = make_notification(ada, status=NotificationStatus.FAILED, channels=["inapp"])
    Delivery.objects.create(notification=notification, channel="inapp", status="failed")
    operator.post(f"/api/notifications/{notification.id}/resend/", {"reason": "retry by hand"}, format="json")
    events = [step["event"] for step in Notification.objects.get(id=notification.id).trace]
    assert events[0] == "resend" and "planned" in events


def test_resend_inside_quiet_hours_is_a_409(operator, ada):
    now = timezone.now()
    QuietHours.objects.create(user=ada, timezone="UTC", start=(now - timezone.timedelta(hours=1)).time(),
                              end=(now + timezone.timedelta(hours=1)).time())
    notification = make_notification(ada, status=NotificationStatus.FAILED, channels=["email"])
    failed = Delivery.objects.create(notification=notification, channel="email", status="failed")
    response = operator.post(f"/api/notifications/{notification.id}/resend/", {"reason": "now"}, format="json")
    assert response.status_code == 409 and "quiet hours" in response.json()["error"]["message"]
    failed.refresh_from_db()
    assert failed.status == "failed" and Resend.objects.count() == 0
    assert Notification.objects.get(id=notification.id).status == NotificationStatus.FAILED
