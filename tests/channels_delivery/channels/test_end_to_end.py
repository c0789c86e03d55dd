"""Each channel end to end: API POST -> dispatch worker -> channel worker -> real SDK -> fake provider."""

import pytest

from notifications.models import (
    Delivery,
    DeliveryStatus,
    PushSubscription,
    RecipientProfile,
    SlackWebhook,
    WebhookEndpoint,
)
from tests.support import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def post(app_api, username, channel, **extra):
    response = app_api.post(
        "/api/notifications/",
        {"recipients": [username], "category": "orders", "title": "Order 123 shipped",
         "message": "It is on its way.", "channels": [channel], "data": {"url": "https://shop.example.com/o/123"},
         **extra},
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()["ids"][0]


def final_delivery(notification_id, status=DeliveryStatus.SENT):
    return wait_until(
        lambda: Delivery.objects.filter(notification_id=notification_id, status=status).first(),
        timeout=30, message=f"delivery {status}",
    )


def test_sms_reaches_twilio(celery_worker, fakes, app_api, make_user):
    user = make_user("sms-user")
    RecipientProfile.objects.create(user=user, phone="+1 (415) 555-2671")

    notification_id = post(app_api, "sms-user", "sms")

    [request] = fakes["twilio"].wait_for(1)
    delivery = final_delivery(notification_id)
    form = request.form()
    assert form["To"] == "+14155552671" and form["Body"] == "Order 123 shipped: It is on its way."
    assert form["StatusCallback"] == f"https://notify.example.com/callbacks/twilio/status/{delivery.id}/"
    assert delivery.provider == "twilio" and delivery.provider_message_id.startswith("SM")
    assert delivery.provider_payload["segments"] == 1 and delivery.provider_payload["encoding"] == "GSM-7"


def test_twilio_status_callback_to_the_url_we_gave_marks_the_sms_delivered(
    celery_worker, fakes, app_api, make_user, channel_settings
):
    from urllib.parse import urlsplit

    from django.test import Client

    user = make_user("sms-loop")
    RecipientProfile.objects.create(user=user, phone="+14155552671")
    notification_id = post(app_api, "sms-loop", "sms")
    fakes["twilio"].wait_for(1)
    final_delivery(notification_id)

    [message] = fakes["twilio"].created
    url, params, signature = fakes["twilio"].status_callback(message, "delivered")
    assert url.startswith(channel_settings.PUBLIC_BASE_URL)
    response = Client().post(urlsplit(url).path, params, HTTP_X_TWILIO_SIGNATURE=signature)

    assert response.status_code == 200
    delivery = final_delivery(notification_id, DeliveryStatus.DELIVERED)
    assert delivery.provider_message_id == params["MessageSid"]


def test_sms_to_an_invalid_number_fails_for_good(celery_worker, fakes, app_api, make_user):
    user = make_user("sms-bad")
    RecipientProfile.objects.create(user=user, phone="+14155550100")
    fakes["twilio"].invalid_numbers.add("+14155550100")

    notification_id = post(app_api, "sms-bad", "sms")

    delivery = final_delivery(notification_id, DeliveryStatus.FAILED)
    [attempt] = delivery.attempts.all()
    assert attempt.outcome == "permanent_error" and attempt.provider_status_code == "21211"
    assert "21211" in delivery.last_error


def test_push_reaches_every_subscription_and_a_dead_one_is_switched_off(celery_worker, fakes, app_api, make_user):
    push = fakes["push"]
    user = make_user("push-user")
    for info in (push.subscribe(), push.subscribe()):
        PushSubscription.objects.create(user=user, endpoint=info["endpoint"], **info["keys"])
    dead = push.subscribe()
    PushSubscription.objects.create(user=user, endpoint=dead["endpoint"], **dead["keys"])
    push.expire(dead["endpoint"])

    notification_id = post(app_api, "push-user", "push", priority="urgent")

    delivery = final_delivery(notification_id)
    assert len(push.pushes) == 2
    for _, payload, headers in push.pushes:
        assert payload["title"] == "Order 123 shipped" and payload["url"] == "https://shop.example.com/o/123"
        assert payload["notification_id"] == notification_id and headers["urgency"] == "high"
    assert [target["ok"] for target in delivery.provider_payload["targets"]] == [True, True, False]
    wait_until(lambda: not PushSubscription.objects.get(endpoint=dead["endpoint"]).active, message="deactivated")
    assert PushSubscription.objects.filter(user=user, active=True).count() == 2


def test_webhook_reaches_the_endpoint_signed(celery_worker, fakes, app_api, make_user):
    receiver = fakes["webhook"]
    user = make_user("hook-user")
    endpoint = WebhookEndpoint.objects.create(user=user, url="http://placeholder.invalid/")
    endpoint.url = receiver.endpoint(endpoint.secret)
    endpoint.save()

    notification_id = post(app_api, "hook-user", "webhook")

    delivery = final_delivery(notification_id)
    [(_, event, headers)] = receiver.events
    assert event["type"] == "notification.created"
    assert event["data"]["id"] == notification_id and event["data"]["recipient"] == "hook-user"
    assert headers["webhook-id"] == str(delivery.id) == headers["idempotency-key"]
    assert endpoint.secret not in str(delivery.message)


def test_slack_reaches_the_webhook_after_a_transient_error(celery_worker, fakes, app_api, make_user):
    slack = fakes["slack"]
    user = make_user("slack-user")
    SlackWebhook.objects.create(user=user, url=slack.new_webhook())
    slack.fail_next(status=503, body=b"service_unavailable")

    notification_id = post(app_api, "slack-user", "slack")

    delivery = final_delivery(notification_id)
    [post_body] = slack.posts()
    assert [block["type"] for block in post_body["blocks"]] == ["header", "section", "context"]
    assert [a.outcome for a in delivery.attempts.all()] == ["transient_error", "sent"]


def test_channel_without_contact_point_is_skipped(celery_worker, fakes, app_api, make_user):
    make_user("nobody")
    notification_id = post(app_api, "nobody", "slack")
    delivery = final_delivery(notification_id, DeliveryStatus.SKIPPED)
    assert delivery.reason == "no contact point"
    assert fakes["slack"].received == []
