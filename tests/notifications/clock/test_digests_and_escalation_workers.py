"""Digests and escalation on real workers and a real beat."""

import datetime
import time
import zoneinfo

import pytest
from django.utils import timezone

from notifications.clock.digests import window_for
from notifications.models import (
    Category,
    Delivery,
    DeliveryStatus,
    Digest,
    Escalation,
    Notification,
    NotificationStatus,
    RecipientProfile,
)
from notifications.planning.sending import store_and_dispatch
from tests.support import wait_until
from tests.support.workers import WorkerProcess


def send(user, category, title, channels):
    return store_and_dispatch(
        recipients=[user], category=category, title=title, channels=channels, priority="medium", data={}
    )[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_escalation_fires_when_unread_and_not_when_read(celery_worker, beat, sendgrid, make_user, user_api):
    category = Category.objects.get(key="messages")
    category.escalate_after_minutes, category.escalate_to = 3, "email"  # a "minute" lasts 1 s in tests
    category.save()
    ada = make_user("ada", email="ada@example.com")
    grace = make_user("grace", email="grace@example.com")

    unread = send(ada, category, "Ada, you have a message", ["inapp"])
    read = send(grace, category, "Grace, you have a message", ["inapp"])
    wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED, channel="inapp").count() == 2,
               message="both in-app deliveries")
    # Grace reads hers in time, through the inbox API.
    assert user_api(grace).put(f"/api/notifications/{read.id}/read/").status_code == 200

    [request] = sendgrid.wait_for(1, timeout=30)
    escalation = Escalation.objects.get(notification=unread)
    sent_after = datetime.datetime.fromtimestamp(request.received_at, datetime.UTC) - escalation.created_at
    print(f"\nescalation email after {sent_after.total_seconds():.1f} s unread (due after 3 s)")
    assert request.json()["personalizations"][0]["to"] == [{"email": "ada@example.com"}]
    assert request.json()["subject"] == "Ada, you have a message"
    assert sent_after >= datetime.timedelta(seconds=3)
    wait_until(lambda: Escalation.objects.get(notification=read).status == "cancelled", timeout=15,
               message="read escalation cancelled")
    time.sleep(2)
    assert len(sendgrid.requests) == 1
    assert Escalation.objects.get(notification=read).reason == "read in time"
    assert Escalation.objects.get(notification=unread).status == "sent"
    email = Delivery.objects.get(notification=unread, channel="email")
    assert email.status == DeliveryStatus.SENT and email.reason == "escalation: in-app unread"


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_fifty_notifications_in_a_window_become_one_email_per_user_with_two_workers_racing(
    celery_worker, beat, sendgrid, make_user, worker_env, tmp_path
):
    second = WorkerProcess(worker_env, log_dir=tmp_path, queues=["dispatch", "maintenance"], name="second").start()
    try:
        users = [make_user("ada", email="ada@example.com"), make_user("ravi", email="ravi@example.com")]
        for user, tz in zip(users, ["America/New_York", "America/New_York"]):
            RecipientProfile.objects.create(user=user, timezone=tz)
        # A daily digest "at" a moment two minutes ahead (the same instant in both time zones): room
        # enough to batch on a slow machine. Once all are batched, the window is made to end now.
        ends = timezone.now() + datetime.timedelta(seconds=120)
        category = Category.objects.get(key="orders")
        category.digest_daily_at = ends.astimezone(zoneinfo.ZoneInfo("America/New_York")).time()
        category.save()
        for i in range(50):
            for user in users:
                send(user, category, f"Order {i} for {user.username}", ["email"])

        wait_until(lambda: Notification.objects.filter(status=NotificationStatus.BATCHED).count() == 100,
                   timeout=60, message="100 notifications batched")
        assert Digest.objects.count() <= 2
        assert timezone.now() < ends, "the machine was too slow to batch before the window ended"
        Digest.objects.update(window_end=timezone.now())
        from notifications.clock.tasks import send_due_digests

        for _ in range(10):  # both workers run the digest task at once, as two beats' ticks would
            send_due_digests.delay()

        sendgrid.wait_for(2, timeout=30)
        time.sleep(2)  # time for a third email, were a digest sent twice
        mails = [r.json() for r in sendgrid.requests]
        print(f"emails at the fake: {len(mails)}: " + "; ".join(m["subject"] for m in mails))
        print(f"digest rows: {list(Digest.objects.values_list('user__username', 'status'))}")
        assert len(mails) == 2
        assert sorted(m["personalizations"][0]["to"][0]["email"] for m in mails) == [
            "ada@example.com", "ravi@example.com"]
        assert {m["subject"] for m in mails} == {"50 new Orders notifications"}
        text = next(c["value"] for c in mails[0]["content"] if c["type"] == "text/plain")
        assert text.count("\n- Order ") == 49 and "- Order 0 for" in text
        assert Digest.objects.filter(status="sent").count() == 2
        digest = Digest.objects.get(user=users[0])
        assert digest.items.count() == 50 and digest.notification.data["digest"]["count"] == 50
    finally:
        second.stop()


def test_digest_windows_rolling_and_daily_in_the_users_time_zone(settings):
    settings.NOTIFY_CLOCK_MINUTE_SECONDS = 60
    rolling = Category(key="x", digest_window_minutes=10)
    moment = datetime.datetime(2026, 3, 8, 6, 7, 30, tzinfo=datetime.UTC)
    assert window_for(rolling, None, moment) == (
        datetime.datetime(2026, 3, 8, 6, 0, tzinfo=datetime.UTC), datetime.datetime(2026, 3, 8, 6, 10, tzinfo=datetime.UTC))

    class User:
        profile = RecipientProfile(timezone="America/New_York")

    daily = Category(key="y", digest_daily_at=datetime.time(9, 0))
    # 01:07 in New York on the day clocks go forward: the window ends at 09:00 EDT (13:00 UTC)
    # and started at 09:00 EST the day before (14:00 UTC), 23 hours earlier.
    start, end = window_for(daily, User(), moment)
    assert end == datetime.datetime(2026, 3, 8, 13, 0, tzinfo=datetime.UTC)
    assert start == datetime.datetime(2026, 3, 7, 14, 0, tzinfo=datetime.UTC)
    assert window_for(Category(key="z"), User(), moment) is None


@pytest.mark.django_db
def test_a_digest_uses_the_category_digest_template_or_else_lists_the_titles(make_user, settings):
    from notifications.clock import digests
    from notifications.models import Template
    from notifications.tasks import dispatch_notifications

    settings.NOTIFY_CLOCK_MINUTE_SECONDS = 60
    Category.objects.filter(key="orders").update(digest_window_minutes=10)
    Category.objects.filter(key="messages").update(digest_window_minutes=10)
    # The category's own template must not render the digest.
    Template.objects.create(key="orders", channel="email", subject="Order {{ order_id }}", body="Order {{ order_id }}")
    Template.objects.create(
        key="messages_digest", channel="email", subject="{{ count }} new messages",
        body="{% for item in items %}* {{ item.title }}\n{% endfor %}",
    )
    ada = make_user("ada", email="ada@example.com")
    sent = []
    for category, titles in [("orders", ["Order 1 shipped", "Order 2 shipped"]), ("messages", ["Hi", "Hello"])]:
        for title in titles:
            sent.append(send(ada, Category.objects.get(key=category), title, ["email"]))
    dispatch_notifications([str(n.id) for n in sent])
    assert Notification.objects.filter(status=NotificationStatus.BATCHED).count() == 4

    assert digests.send_due(now=timezone.now() + datetime.timedelta(minutes=11)) == 2
    dispatch_notifications([str(d.notification_id) for d in Digest.objects.all()])

    orders = Delivery.objects.get(notification__digest_sent__category="orders").message
    messages = Delivery.objects.get(notification__digest_sent__category="messages").message
    assert orders["subject"] == "2 new Orders notifications"
    assert orders["text"] == "- Order 1 shipped\n- Order 2 shipped"
    assert messages["subject"] == "2 new messages"
    assert messages["text"] == "* Hi\n* Hello\n"
