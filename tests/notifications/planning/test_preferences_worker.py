"""Through a real worker: a switched-off channel is skipped with its reason, a template-rendered email
reaches the fake SendGrid with one-click unsubscribe headers, and the link switches the category off."""

import pytest
from django.test import Client

from notifications.models import ChannelPreference, Delivery, Notification, NotificationStatus, Template
from tests.support import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def send(app_api):
    response = app_api.post(
        "/api/notifications/",
        {"recipients": ["ada"], "category": "orders", "template": "orders", "context": {"order_id": "A<1>"},
         "channels": ["inapp", "email"]},
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()["ids"][0]


def test_preferences_templates_and_unsubscribe_end_to_end(celery_worker, worker_env, sendgrid, app_api, make_user):
    ada = make_user("ada", email="ada@example.com", first_name="Ada")
    ChannelPreference.objects.create(user=ada, channel="inapp", enabled=False)
    Template.objects.create(
        key="orders", channel="email", subject="Order {{ order_id }} shipped",
        body="Hi {{ recipient.first_name }}, {{ order_id }} is on its way.\nStop: {{ unsubscribe_url }}",
        html_body="<p>{{ order_id }}</p>", variables=["order_id"],
    )

    first = send(app_api)

    [request] = sendgrid.wait_for(1)
    mail = request.json()
    assert mail["subject"] == "Order A<1> shipped"
    assert {"type": "text/html", "value": "<p>A&lt;1&gt;</p>"} in mail["content"]
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = mail["headers"]["List-Unsubscribe"].strip("<>")
    base = worker_env["PUBLIC_BASE_URL"]
    assert link.startswith(f"{base}/unsubscribe/")
    text = next(part["value"] for part in mail["content"] if part["type"] == "text/plain")
    assert text == f"Hi Ada, A<1> is on its way.\nStop: {link}"
    email = wait_until(
        lambda: Delivery.objects.filter(notification_id=first, channel="email", status="sent").first(),
        timeout=30, message="email sent",
    )
    assert email.template_version == 1
    inapp = Delivery.objects.get(notification_id=first, channel="inapp")
    assert (inapp.status, inapp.reason) == ("skipped", "switched off by user")

    path = link.removeprefix(base)
    assert Client().post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200

    second = send(app_api)

    wait_until(
        lambda: Notification.objects.filter(id=second, status=NotificationStatus.FAILED).exists(),
        timeout=30, message="second notification planned",
    )
    skipped = Delivery.objects.get(notification_id=second, channel="email")
    assert (skipped.status, skipped.reason) == ("skipped", "switched off for category orders by user")
    assert len(sendgrid.requests) == 1


def test_explain_shows_the_attempts_and_fallback_hop_of_a_real_chain(celery_worker, sendgrid, app_api, make_user):
    make_user("ada", email="ada@example.com")
    sendgrid.fail_next(status=400, body=b'{"errors":[{"message":"Invalid to email"}]}')

    response = app_api.post(
        "/api/notifications/",
        {"recipients": ["ada"], "category": "orders", "title": "Hi", "channels": [["email", "inapp"]]},
        format="json",
    )

    [notification_id] = response.json()["ids"]
    wait_until(
        lambda: Delivery.objects.filter(notification_id=notification_id, channel="inapp", status="delivered").exists(),
        timeout=30, message="fallback to in-app",
    )
    explanation = app_api.get(f"/api/notifications/{notification_id}/explain/").json()
    [hop] = explanation["fallback_hops"]
    assert (hop["source"], hop["target"]) == ("email", "inapp") and hop["reason"]
    # The sending app learns that the provider refused, not the provider's own words (operators do).
    assert "Invalid to email" not in str(explanation)
    assert "Invalid to email" in Delivery.objects.get(notification_id=notification_id, channel="email").reason
    email, inapp = explanation["deliveries"]
    assert email["status"] == "failed" and [a["outcome"] for a in email["attempts"]] == ["permanent_error"]
    assert inapp["status"] == "delivered" and inapp["position"] == 1
    assert [(d["channel"], d["decision"]) for d in explanation["decisions"]] == [("email", "use"), ("inapp", "use")]
