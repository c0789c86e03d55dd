"""GET /api/notifications/{id}/explain/: the decision trace, attempts, hops and template version."""

from datetime import time

import pytest

from notifications.models import (
    ApiClient,
    ChannelPreference,
    Delivery,
    DeliveryAttempt,
    Notification,
    QuietHours,
    Template,
)
from notifications.tasks import dispatch_notifications

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(make_user):
    return make_user("ada")


def send(app_api, **body):
    response = app_api.post(
        "/api/notifications/", {"recipients": ["ada"], "category": "orders", "title": "Hi", **body}, format="json"
    )
    assert response.status_code == 202, response.content
    [notification_id] = response.json()["ids"]
    dispatch_notifications([notification_id])
    return notification_id


def explain(api, notification_id):
    return api.get(f"/api/notifications/{notification_id}/explain/")


def test_explains_used_and_skipped_channels_with_template_version(app_api, user_api, ada):
    ChannelPreference.objects.create(user=ada, channel="inapp", enabled=False)
    Template.objects.create(
        key="orders", channel="email", subject="Order {{ order_id }}", body="b", variables=["order_id"]
    )
    notification_id = send(app_api, channels=["inapp", "email", "sms"], context={"order_id": "9"})

    response = explain(user_api(ada), notification_id)

    assert response.status_code == 200, response.content
    explanation = response.json()
    assert explanation["category"] == "orders" and explanation["critical"] is False
    decisions = {d["channel"]: (d["decision"], d["reason"]) for d in explanation["decisions"]}
    assert decisions == {
        "inapp": ("skip", "switched off by user"),
        "email": ("use", "switched on by default"),
        "sms": ("skip", "no contact point"),
    }
    deliveries = {d["channel"]: d for d in explanation["deliveries"]}
    assert deliveries["email"]["status"] == "queued" and deliveries["email"]["template_version"] == 1
    assert deliveries["inapp"]["reason"] == "switched off by user"
    assert [e for e in explanation["decisions"] if e["channel"] == "email"][0]["template_version"] == 1


def test_explains_a_quiet_hours_deferral(app_api, user_api, ada):
    QuietHours.objects.create(user=ada, timezone="UTC", start=time(0, 0), end=time(23, 59))
    notification_id = send(app_api, channels=["email"])

    explanation = explain(user_api(ada), notification_id).json()

    assert explanation["status"] == "scheduled" and explanation["scheduled_at"]
    [event] = explanation["decisions"]
    assert event["event"] == "deferred" and event["reason"].startswith("quiet hours until ")
    assert explanation["deliveries"] == []


def test_explains_attempts_and_fallback_hops(user_api, ada, make_user):
    notification = Notification.objects.create(recipient=ada, category_id="orders", title="Hi")
    email = Delivery.objects.create(notification=notification, channel="email", position=0, status="failed",
                                    reason="permanent error: SendGrid 400: bad address", attempt_count=1)
    DeliveryAttempt.objects.create(delivery=email, number=1, provider="sendgrid", outcome="permanent_error",
                                   error="SendGrid 400: bad address", provider_status_code="400")
    Delivery.objects.create(notification=notification, channel="sms", position=1, status="sent")
    Delivery.objects.create(notification=notification, channel="inapp", route=1, status="sent")

    explanation = explain(user_api(ada), notification.id).json()

    # The recipient (like a sending app) sees that the provider failed, not the provider's words.
    assert explanation["fallback_hops"] == [{"route": 0, "source": "email", "target": "sms", "reason": "permanent error"}]
    [email_shown] = [d for d in explanation["deliveries"] if d["channel"] == "email"]
    [attempt] = email_shown["attempts"]
    assert attempt["outcome"] == "permanent_error" and attempt["provider_status_code"] == "400"
    assert attempt["error"] == "provider error" and "SendGrid" not in str(explanation)
    # Operators see everything.
    full = explain(user_api(make_user("ops", is_staff=True)), notification.id).json()
    assert full["fallback_hops"][0]["reason"] == "permanent error: SendGrid 400: bad address"
    assert [d for d in full["deliveries"] if d["channel"] == "email"][0]["attempts"][0]["error"] == "SendGrid 400: bad address"


def test_visible_to_recipient_sender_and_staff_only(app_api, user_api, make_user, ada):
    notification_id = send(app_api, channels=["email"])
    assert explain(app_api, notification_id).status_code == 200
    assert explain(user_api(make_user("ops", is_staff=True)), notification_id).status_code == 200

    assert explain(user_api(make_user("bob")), notification_id).status_code == 404
    _other, key = ApiClient.issue("Other app", make_user("other-owner"), scopes=["send", "read"])
    app_api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert explain(app_api, notification_id).status_code == 404
    assert explain(user_api(ada), "00000000-0000-0000-0000-000000000000").status_code == 404
    assert user_api(ada).get("/api/notifications/not-a-uuid/explain/").status_code == 404
