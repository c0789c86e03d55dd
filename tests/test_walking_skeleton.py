"""One notification end to end: API -> dispatch worker -> email worker -> SendGrid SDK -> fake SendGrid."""

import pytest

from notifications.models import Delivery, DeliveryStatus, Notification, NotificationStatus
from tests.support import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_email_reaches_sendgrid_through_a_real_worker(celery_worker, sendgrid, app_api, make_user):
    make_user("42", email="ada@example.com")

    response = app_api.post(
        "/api/notifications/",
        {"recipients": ["42"], "category": "orders", "title": "Order 123 shipped", "message": "It is on its way.",
         "channels": ["email"]},
        format="json",
    )

    assert response.status_code == 202, response.content
    [notification_id] = response.json()["ids"]
    [request] = sendgrid.wait_for(1)
    mail = request.json()
    assert mail["personalizations"][0]["to"] == [{"email": "ada@example.com"}]
    assert mail["subject"] == "Order 123 shipped"
    assert {"type": "text/plain", "value": "It is on its way."} in mail["content"]
    delivery = wait_until(
        lambda: Delivery.objects.filter(notification_id=notification_id, status=DeliveryStatus.SENT).first(),
        message="delivery sent",
    )
    assert mail["personalizations"][0]["custom_args"] == {"delivery_id": str(delivery.id)}
    assert delivery.provider == "sendgrid"
    assert delivery.provider_message_id
    assert delivery.attempt_count == 1
    [attempt] = delivery.attempts.all()
    assert attempt.outcome == "sent" and attempt.provider_status_code == "202"
    # Accepted by SendGrid, not yet confirmed by its event webhook: the notification is `sent`.
    wait_until(
        lambda: Notification.objects.filter(id=notification_id, status=NotificationStatus.SENT).exists(),
        message="notification sent",
    )

    detail = app_api.get(f"/api/notifications/{notification_id}/").json()
    assert detail["deliveries"][0]["status"] == "sent"
    assert len(detail["deliveries"][0]["attempts"]) == 1


def test_inapp_and_email_planned_together(celery_worker, sendgrid, app_api, make_user):
    make_user("7", email="grace@example.com")

    response = app_api.post(
        "/api/notifications/",
        {"recipients": ["7"], "category": "messages", "title": "New message", "channels": ["inapp", "email"]},
        format="json",
    )

    [notification_id] = response.json()["ids"]
    # The inbox is its own confirmation (`delivered`); SendGrid's acceptance is `sent`.
    wait_until(
        lambda: set(Delivery.objects.filter(notification_id=notification_id).values_list("channel", "status"))
        == {("inapp", DeliveryStatus.DELIVERED), ("email", DeliveryStatus.SENT)},
        message="both deliveries out",
    )
    assert sendgrid.wait_for(1)[0].json()["subject"] == "New message"
    channels = list(Delivery.objects.filter(notification_id=notification_id).values_list("channel", flat=True))
    assert channels == ["inapp", "email"]


def test_sendgrid_rejection_fails_the_delivery_with_the_reason(celery_worker, sendgrid, app_api, make_user):
    make_user("9", email="bad@example.com")
    sendgrid.fail_next(status=400, body=b'{"errors":[{"message":"Invalid to email"}]}')

    response = app_api.post(
        "/api/notifications/",
        {"recipients": ["9"], "category": "orders", "title": "Hi", "channels": ["email"]},
        format="json",
    )

    [notification_id] = response.json()["ids"]
    delivery = wait_until(
        lambda: Delivery.objects.filter(notification_id=notification_id, status=DeliveryStatus.FAILED).first(),
        message="delivery failed",
    )
    assert "Invalid to email" in delivery.last_error
    assert delivery.attempts.get().outcome == "permanent_error"


def test_recipient_without_email_is_skipped_with_a_reason(celery_worker, sendgrid, app_api, make_user):
    make_user("11", email="")

    response = app_api.post(
        "/api/notifications/",
        {"recipients": ["11"], "category": "orders", "title": "Hi", "channels": ["email"]},
        format="json",
    )

    [notification_id] = response.json()["ids"]
    wait_until(
        lambda: Notification.objects.filter(id=notification_id, status=NotificationStatus.FAILED).exists(),
        message="notification failed",
    )
    delivery = Delivery.objects.get(notification_id=notification_id)
    assert delivery.status == DeliveryStatus.SKIPPED and delivery.reason == "no contact point"
    assert sendgrid.requests == []
