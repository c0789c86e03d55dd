"""Escalation is planned like any send (switches, quiet hours, contact points, the explain trace)
and reading a notification cancels its escalation at once."""

import datetime

import pytest
from django.utils import timezone

from notifications.clock.escalation import escalate_due
from notifications.models import (
    Category,
    ChannelPreference,
    Delivery,
    DeliveryStatus,
    Escalation,
    Notification,
    NotificationStatus,
    QuietHours,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def category():
    category = Category.objects.get(key="messages")
    category.escalate_after_minutes, category.escalate_to = 5, "email"
    category.save()
    return category


def unread_in_app(user, category):
    """A notification delivered in-app whose escalation is due now."""
    notification = Notification.objects.create(
        recipient=user, category=category, title="You have a message", routes=[["inapp"]],
        status=NotificationStatus.DELIVERED,
    )
    Delivery.objects.create(notification=notification, channel="inapp", status=DeliveryStatus.DELIVERED)
    escalation = Escalation.objects.create(
        notification=notification, channel="email", due_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    return notification, escalation


def explain(user_api, user, notification):
    response = user_api(user).get(f"/api/notifications/{notification.id}/explain/")
    assert response.status_code == 200, response.content
    return response.json()["decisions"]


def test_an_unread_notification_escalates_through_planning(category, make_user, user_api):
    ada = make_user("ada")
    notification, escalation = unread_in_app(ada, category)

    assert escalate_due() == {"sent": 1, "cancelled": 0}

    email = Delivery.objects.get(notification=notification, channel="email")
    assert email.status == DeliveryStatus.QUEUED and email.route == 1 and email.message["to"] == "ada@example.com"
    escalation.refresh_from_db()
    assert escalation.status == Escalation.Status.SENT
    [planned] = [d for d in explain(user_api, ada, notification) if d["event"] == "planned"]
    assert planned["channel"] == "email" and planned["decision"] == "use"
    assert planned["reason"].startswith("escalation: ")


def test_escalation_respects_a_switched_off_channel(category, make_user, user_api):
    ada = make_user("ada")
    ChannelPreference.objects.create(user=ada, category=category, channel="email", enabled=False)
    notification, escalation = unread_in_app(ada, category)

    assert escalate_due() == {"sent": 0, "cancelled": 1}

    assert not Delivery.objects.filter(notification=notification, channel="email").exists()
    escalation.refresh_from_db()
    assert escalation.status == Escalation.Status.CANCELLED and "switched off" in escalation.reason
    [planned] = [d for d in explain(user_api, ada, notification) if d["event"] == "planned"]
    assert planned["decision"] == "skip" and "switched off" in planned["reason"]


def test_escalation_waits_for_the_end_of_quiet_hours(category, make_user, user_api):
    ada = make_user("ada")
    now = timezone.now()
    start = (now - datetime.timedelta(hours=1)).time()
    end = (now + datetime.timedelta(hours=1)).time()
    QuietHours.objects.create(user=ada, timezone="UTC", start=start, end=end)
    notification, escalation = unread_in_app(ada, category)

    assert escalate_due() == {"sent": 0, "cancelled": 0}

    escalation.refresh_from_db()
    assert escalation.status == Escalation.Status.PENDING and escalation.reason == "deferred by quiet hours"
    assert escalation.due_at > now + datetime.timedelta(minutes=50)
    assert not Delivery.objects.filter(notification=notification, channel="email").exists()
    [deferred] = [d for d in explain(user_api, ada, notification) if d["event"] == "escalation deferred"]
    assert deferred["channel"] == "email" and "quiet hours" in deferred["reason"]
    # Reading it while it waits cancels it too.
    assert user_api(ada).put(f"/api/notifications/{notification.id}/read/").status_code == 200
    escalation.refresh_from_db()
    assert escalation.status == Escalation.Status.CANCELLED


def test_reading_cancels_the_escalation_at_once(category, make_user, user_api):
    ada = make_user("ada")
    notification, escalation = unread_in_app(ada, category)
    escalation.due_at = timezone.now() + datetime.timedelta(minutes=5)
    escalation.save()

    response = user_api(ada).put(f"/api/notifications/{notification.id}/read/")

    assert response.status_code == 200 and response.json()["read_at"]
    escalation.refresh_from_db()
    assert escalation.status == Escalation.Status.CANCELLED and escalation.reason == "read in time"


def test_read_all_cancels_every_pending_escalation(category, make_user, user_api):
    ada = make_user("ada")
    (first, one), (second, two) = unread_in_app(ada, category), unread_in_app(ada, category)

    response = user_api(ada).post("/api/notifications/read-all/")

    assert response.json() == {"updated": 2}
    assert set(Escalation.objects.values_list("status", flat=True)) == {Escalation.Status.CANCELLED}
    assert escalate_due() == {"sent": 0, "cancelled": 0}
