"""scheduled_at, expires_at, template and context, and cancelling before anything went out."""

import pytest
from django.utils import timezone

from notifications.models import Delivery, DeliveryStatus, Notification, NotificationStatus, Template

pytestmark = pytest.mark.django_db

SEND = "/api/notifications/"


def send(api, **overrides):
    body = {"recipients": ["42"], "category": "orders", "title": "Shipped"}
    body.update(overrides)
    return api.post(SEND, body, format="json")


def later(**delta):
    return (timezone.now() + timezone.timedelta(**delta)).isoformat()


@pytest.fixture
def recipient(make_user):
    return make_user("42")


def test_scheduled_send_is_held(app_api, recipient):
    response = send(app_api, scheduled_at=later(hours=2), expires_at=later(hours=3), priority="high",
                    data={"order": 123})
    assert response.status_code == 202
    notification = Notification.objects.get(id=response.json()["ids"][0])
    assert notification.status == NotificationStatus.SCHEDULED
    assert notification.scheduled_at > timezone.now() and notification.expires_at > notification.scheduled_at
    assert (notification.priority, notification.data) == ("high", {"order": 123})


def test_template_and_context_are_stored(app_api, recipient):
    Template.objects.create(key="order-shipped", channel="email", subject="Order {{ order }}", body="Shipped",
                            variables=["order"])
    response = send(app_api, template="order-shipped", context={"order": "123"})
    assert response.status_code == 202
    notification = Notification.objects.get(id=response.json()["ids"][0])
    assert (notification.template_key, notification.context) == ("order-shipped", {"order": "123"})


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at"),
        ({"scheduled_at": "tomorrow-ish"}, "scheduled_at"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"priority": "urgentest"}, "priority"),
        ({"context": ["not", "a", "dict"]}, "context"),
    ],
)
def test_bad_timing_is_a_field_error(app_api, recipient, fields, field):
    response = send(app_api, **fields)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_expiry_before_schedule_is_a_400(app_api, recipient):
    response = send(app_api, scheduled_at=later(hours=3), expires_at=later(hours=2))
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["fields"]


def planned(notification_id, *statuses):
    notification = Notification.objects.get(id=notification_id)
    return [
        Delivery.objects.create(notification=notification, channel=channel, status=status)
        for channel, status in zip(["email", "inapp", "sms"], statuses)
    ]


def test_cancel_before_sending_cancels_waiting_deliveries(app_api, recipient):
    notification_id = send(app_api).json()["ids"][0]
    Notification.objects.filter(id=notification_id).update(status=NotificationStatus.DISPATCHED)
    planned(notification_id, DeliveryStatus.QUEUED, DeliveryStatus.PENDING, DeliveryStatus.RETRYING)

    response = app_api.post(f"{SEND}{notification_id}/cancel/")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert set(Delivery.objects.filter(notification_id=notification_id).values_list("status", flat=True)) == {
        "cancelled"
    }
    assert app_api.post(f"{SEND}{notification_id}/cancel/").status_code == 200  # idempotent


def test_cancel_a_scheduled_notification(app_api, recipient):
    notification_id = send(app_api, scheduled_at=later(days=1)).json()["ids"][0]
    assert app_api.post(f"{SEND}{notification_id}/cancel").status_code == 200
    assert Notification.objects.get(id=notification_id).status == NotificationStatus.CANCELLED


def test_cancel_after_sending_is_a_409(app_api, recipient):
    notification_id = send(app_api).json()["ids"][0]
    planned(notification_id, DeliveryStatus.SENT, DeliveryStatus.QUEUED)
    response = app_api.post(f"{SEND}{notification_id}/cancel/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert Delivery.objects.get(notification_id=notification_id, channel="inapp").status == "queued"


def test_only_the_sender_may_cancel(app_api, user_api, recipient):
    notification_id = send(app_api).json()["ids"][0]
    assert user_api(recipient).post(f"{SEND}{notification_id}/cancel/").status_code == 403
    assert Notification.objects.get(id=notification_id).status == NotificationStatus.PENDING
