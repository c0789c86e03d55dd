"""The reaper, expiry and clean-up: Postgres is the truth, whatever the broker forgot."""

import datetime
import logging
import time

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from channels_delivery.engine import delivery as delivery_engine
from notifications.clock import cleanup
from notifications.clock.reaper import reap
from notifications.models import (
    Category,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)
from notifications.planning import planner
from tests.support import wait_until

User = get_user_model()


def planned(user, title, status, age_seconds=0, channel="email", **fields):
    """A notification whose delivery was planned but whose broker message is gone."""
    notification = Notification.objects.create(
        recipient=user, category=Category.objects.get(key="orders"), title=title, routes=[[channel]],
        status=NotificationStatus.DISPATCHED, **fields,
    )
    [row] = planner.plan(notification)
    row.status = status
    row.save()
    Delivery.objects.filter(id=row.id).update(updated_at=timezone.now() - datetime.timedelta(seconds=age_seconds))
    return row


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_reaper_recovers_lost_messages_and_dead_workers_but_leaves_live_tasks(celery_worker, sendgrid, make_user):
    ada = make_user("ada", email="ada@example.com")
    lost_message = planned(ada, "lost in the broker", DeliveryStatus.QUEUED, age_seconds=600)
    dead_worker = planned(ada, "worker died", DeliveryStatus.SENDING, age_seconds=600)
    live = planned(ada, "still being sent", DeliveryStatus.SENDING, age_seconds=5)
    lost_retry = planned(ada, "retry lost", DeliveryStatus.RETRYING, age_seconds=600)
    Delivery.objects.filter(id=lost_retry.id).update(next_retry_at=timezone.now() - datetime.timedelta(seconds=500))
    lost_dispatch = Notification.objects.create(
        recipient=ada, category=Category.objects.get(key="orders"), title="dispatch lost", routes=[["email"]],
        status=NotificationStatus.PENDING, created_at=timezone.now() - datetime.timedelta(seconds=600),
    )

    report = reap(queued_after=300, sending_after=300, retrying_after=300, pending_after=300)

    print(f"\nreaper report: {report}")
    assert {k: report[k] for k in ("sending", "queued", "retrying", "pending notifications")} == {
        "sending": 1, "queued": 1, "retrying": 1, "pending notifications": 1}
    sendgrid.wait_for(4, timeout=30)
    wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.SENT).count() == 4, message="4 sent")
    subjects = sorted(r.json()["subject"] for r in sendgrid.requests)
    assert subjects == ["dispatch lost", "lost in the broker", "retry lost", "worker died"]
    assert Delivery.objects.get(id=live.id).status == DeliveryStatus.SENDING
    note = DeliveryAttempt.objects.get(delivery=dead_worker, outcome="requeued").note
    assert note.startswith("re-enqueued by reaper after 6") and note.endswith("s in sending")
    assert "in queued" in DeliveryAttempt.objects.get(delivery=lost_message, outcome="requeued").note
    assert "in retrying" in DeliveryAttempt.objects.get(delivery=lost_retry, outcome="requeued").note
    # Accepted by SendGrid, not yet confirmed by its event webhook: `sent`.
    wait_until(
        lambda: Notification.objects.filter(id=lost_dispatch.id, status=NotificationStatus.SENT).exists(),
        message="lost dispatch sent",
    )
    assert not any(reap(queued_after=300, sending_after=300, retrying_after=300, pending_after=300).values())


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_reaper_resumes_a_fallback_whose_errback_was_lost(celery_worker, sendgrid, make_user):
    ada = make_user("ada", email="ada@example.com")
    notification = Notification.objects.create(
        recipient=ada, category=Category.objects.get(key="orders"), title="fell back",
        routes=[["inapp", "email"]], status=NotificationStatus.DISPATCHED,
    )
    inapp, email = planner.plan(notification)
    inapp.status, inapp.reason = DeliveryStatus.FAILED, "permanent error: inbox closed"
    Delivery.objects.bulk_create([inapp, email])
    Delivery.objects.filter(id=inapp.id).update(updated_at=timezone.now() - datetime.timedelta(seconds=600))
    assert Delivery.objects.get(id=email.id).status == DeliveryStatus.PENDING

    report = reap(queued_after=300, sending_after=300, retrying_after=300, pending_after=300)

    assert report["stalled fallbacks"] == 1
    [request] = sendgrid.wait_for(1, timeout=30)
    assert request.json()["subject"] == "fell back"
    wait_until(lambda: Delivery.objects.get(id=email.id).status == DeliveryStatus.SENT, message="fallback sent")


@pytest.mark.django_db(transaction=True)
def test_a_delivery_task_for_an_expired_notification_is_skipped(sendgrid, make_user, settings):
    settings.SENDGRID_API_KEY, settings.SENDGRID_HOST = sendgrid.api_key, sendgrid.url
    ada = make_user("ada", email="ada@example.com")
    row = planned(ada, "too late", DeliveryStatus.QUEUED, expires_at=timezone.now() - datetime.timedelta(seconds=1))

    assert delivery_engine.attempt(str(row.id)) is None

    row.refresh_from_db()
    assert (row.status, row.reason) == (DeliveryStatus.SKIPPED, "expired")
    assert row.attempts.get().outcome == "skipped"
    assert sendgrid.requests == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_expired_messages_are_discarded_by_the_worker_and_their_rows_skipped(
    celery_worker, sendgrid, make_user, isolated_broker
):
    from channels_delivery.engine.fallback import enqueue_deliveries

    ada = make_user("ada", email="ada@example.com")
    row = planned(ada, "expired in the queue", DeliveryStatus.QUEUED,
                  expires_at=timezone.now() - datetime.timedelta(seconds=1))
    discarded = celery_worker.log().count("Discarding revoked task: channels_delivery.deliver_email")
    enqueue_deliveries([Delivery.objects.select_related("notification").get(id=row.id)])
    if isolated_broker.startswith("redis"):
        wait_until(
            lambda: celery_worker.log().count("Discarding revoked task: channels_delivery.deliver_email") > discarded,
            timeout=20, message="worker discards the expired message",
        )
    else:
        time.sleep(2)  # RabbitMQ drops it itself: Celery sets the message's TTL (expiration) from expires
    assert Delivery.objects.get(id=row.id).attempts.count() == 0  # the task never ran

    assert not any(reap().values())
    row.refresh_from_db()
    assert (row.status, row.reason) == (DeliveryStatus.SKIPPED, "expired")
    assert sendgrid.requests == []


@pytest.mark.django_db
def test_purge_removes_only_what_is_past_retention_and_logs_it(make_user, settings, caplog):
    settings.NOTIFY_RETENTION_ATTEMPTS_DAYS, settings.NOTIFY_RETENTION_READ_DAYS = 30, 90
    settings.NOTIFY_RETENTION_EXPIRED_DAYS = 7
    ada = make_user("ada")
    now = timezone.now()
    days = datetime.timedelta(days=1)
    old = planned(ada, "old attempts", DeliveryStatus.SENT)
    for age in (31, 40, 2):
        DeliveryAttempt.objects.create(delivery=old, number=1, outcome="sent", started_at=now - age * days)
    planned(ada, "read long ago", DeliveryStatus.SENT, channel="inapp").notification.__class__.objects.filter(
        title="read long ago").update(read_at=now - 91 * days)
    Notification.objects.filter(title="old attempts").update(read_at=now - 5 * days)
    planned(ada, "expired long ago", DeliveryStatus.SKIPPED, expires_at=now - 8 * days)
    Notification.objects.filter(title="expired long ago").update(status=NotificationStatus.EXPIRED)
    planned(ada, "expired yesterday", DeliveryStatus.SKIPPED, expires_at=now - days)
    Notification.objects.filter(title="expired yesterday").update(status=NotificationStatus.EXPIRED)

    with caplog.at_level(logging.INFO, logger="notifications.clock.cleanup"):
        report = cleanup.purge(batch=1)

    print(f"\npurge report: {report}")
    assert report["delivery attempts"] == {"notifications.DeliveryAttempt": 2}
    assert report["read notifications"]["notifications.Notification"] == 1
    assert report["expired notifications"]["notifications.Notification"] == 1
    assert sorted(Notification.objects.values_list("title", flat=True)) == ["expired yesterday", "old attempts"]
    assert DeliveryAttempt.objects.count() == 1
    assert "purge delivery attempts: removed 2 notifications.DeliveryAttempt" in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_daily_dead_letter_summary_reaches_operators_by_email(celery_worker, sendgrid, make_user, settings):
    settings.OPERATOR_EMAILS = ["oncall@example.com"]
    make_user("root", email="root@example.com", is_staff=True)
    # A user who set the on-call address as their own (emails are not verified) gets nothing.
    intruder = make_user("intruder", email="ONCALL@example.com")
    ada = make_user("ada", email="ada@example.com")
    for title, reason in [("a", "permanent error: SendGrid 400"), ("b", "permanent error: SendGrid 400"),
                          ("c", "retries exhausted: SendGrid 503")]:
        row = planned(ada, title, DeliveryStatus.FAILED)
        Delivery.objects.filter(id=row.id).update(reason=reason)

    assert cleanup.send_dead_letter_summary() == {"dead_letters": 3, "recipients": 1}

    mails = [r.json() for r in sendgrid.wait_for(1, timeout=30)]
    assert [m["personalizations"][0]["to"][0]["email"] for m in mails] == ["oncall@example.com"]
    assert not Notification.objects.filter(recipient=intruder).exists()
    # With no configured address, active staff get it.
    settings.OPERATOR_EMAILS = []
    assert cleanup.operators() == [User.objects.get(username="root")]
    text = next(c["value"] for c in mails[0]["content"] if c["type"] == "text/plain")
    print("\n" + mails[0]["subject"] + "\n" + text)
    assert mails[0]["subject"] == "Dead letters: 3 failed deliveries in the last 24 hours"
    assert "     2  email    permanent error: SendGrid 400" in text
    assert "     1  email    retries exhausted: SendGrid 503" in text
