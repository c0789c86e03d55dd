"""Every path that hands notifications to dispatch keeps their priority lane: sends, scheduled
sends, digests and the reaper's re-dispatch (one message per lane, after commit)."""

import datetime

import pytest
from celery.signals import before_task_publish
from django.utils import timezone

from config.celery import PRIORITY_LANES
from config.celery import app as celery_app
from notifications.clock import digests, reaper, scheduled
from notifications.models import Category, Digest, Notification, NotificationStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatched():
    """{lane: [notification ids]} of every dispatch message published during the test."""
    seen = {}

    def record(sender=None, body=None, properties=None, **kwargs):
        if sender == "notifications.dispatch_notifications":
            args = body[0] if isinstance(body, (list, tuple)) else body["args"]
            seen.setdefault(properties.get("priority"), []).extend(args[0])

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)
    celery_app.control.purge()


def notification(user, priority, **fields):
    return Notification.objects.create(
        recipient=user, category_id="orders", title=f"{priority} news", routes=[["inapp"]], priority=priority,
        **fields,
    )


def test_due_scheduled_notifications_keep_their_lane(make_user, dispatched):
    ada = make_user("ada")
    past = timezone.now() - datetime.timedelta(seconds=5)
    urgent = notification(ada, "urgent", status=NotificationStatus.SCHEDULED, scheduled_at=past)
    low = notification(ada, "low", status=NotificationStatus.SCHEDULED, scheduled_at=past)

    assert scheduled.dispatch_due()["dispatched"] == 2

    assert dispatched == {PRIORITY_LANES["urgent"]: [str(urgent.id)], PRIORITY_LANES["low"]: [str(low.id)]}


def test_a_digest_goes_out_in_its_most_urgent_items_lane(make_user, dispatched):
    ada = make_user("ada")
    now = timezone.now()
    digest = Digest.objects.create(user=ada, category=Category.objects.get(key="orders"),
                                   window_start=now - datetime.timedelta(minutes=10), window_end=now)
    notification(ada, "low", status=NotificationStatus.BATCHED, digest=digest)
    notification(ada, "high", status=NotificationStatus.BATCHED, digest=digest)

    assert digests.send_due() == 1

    digest.refresh_from_db()
    assert dispatched == {PRIORITY_LANES["high"]: [str(digest.notification_id)]}


def test_the_reaper_redispatches_lost_notifications_in_their_lanes(make_user, dispatched):
    ada = make_user("ada")
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    urgent = notification(ada, "urgent", status=NotificationStatus.PENDING, created_at=long_ago)
    medium = notification(ada, "medium", status=NotificationStatus.PENDING, created_at=long_ago)

    assert reaper.reap()["pending notifications"] == 2

    assert dispatched == {PRIORITY_LANES["urgent"]: [str(urgent.id)], PRIORITY_LANES["medium"]: [str(medium.id)]}
