"""Scheduled sends on a real beat, and the schedules beat runs (declared in code, kept in Postgres)."""

import datetime
import logging
import time

import pytest
import redis
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from notifications.clock import schedules
from notifications.clock.scheduled import dispatch_due
from notifications.models import Category, Delivery, Notification, NotificationStatus
from notifications.planning.sending import store_and_dispatch
from tests.support import wait_until
from tests.support.workers import BeatProcess


def schedule(users, when, title, channels=("email",), **extra):
    return store_and_dispatch(
        recipients=users, category=Category.objects.get(key="orders"), title=title, channels=list(channels),
        priority="medium", data={}, scheduled_at=when, **extra,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_scheduled_send_goes_out_within_5_seconds_and_a_cancelled_one_never(
    celery_worker, beat, sendgrid, make_user, isolated_broker, app_api
):
    make_user("ada", email="ada@example.com")
    due = timezone.now() + datetime.timedelta(seconds=4)

    def post(title):
        response = app_api.post(
            "/api/notifications/",
            {"recipients": ["ada"], "category": "orders", "title": title, "channels": ["email"],
             "scheduled_at": due.isoformat()},
            format="json",
        )
        assert response.status_code == 202, response.content
        return Notification.objects.get(id=response.json()["ids"][0])

    kept, cancelled = post("Your sale starts now"), post("Cancelled sale")
    assert app_api.post(f"/api/notifications/{cancelled.id}/cancel/").status_code == 200
    assert Notification.objects.get(id=kept.id).status == NotificationStatus.SCHEDULED
    # It waits in Postgres, not as an ETA task in the broker.
    if isolated_broker.startswith("redis"):
        assert redis.Redis.from_url(isolated_broker).llen("dispatch") == 0

    [request] = sendgrid.wait_for(1, timeout=30)
    arrived = datetime.datetime.fromtimestamp(request.received_at, datetime.UTC)
    print(f"\nscheduled for {due:%H:%M:%S.%f}, reached the fake SendGrid at {arrived:%H:%M:%S.%f}")
    assert due <= arrived <= due + datetime.timedelta(seconds=5)
    assert request.json()["subject"] == "Your sale starts now"

    time.sleep(2)  # two more beat ticks: the cancelled one stays where it is
    assert len(sendgrid.requests) == 1
    cancelled.refresh_from_db()
    assert cancelled.status == NotificationStatus.CANCELLED
    assert not Delivery.objects.filter(notification=cancelled).exists()


@pytest.mark.django_db
def test_due_notifications_are_claimed_once_and_expired_ones_never_sent(make_user, django_capture_on_commit_callbacks):
    ada = make_user("ada")
    in_an_hour = timezone.now() + datetime.timedelta(hours=1)
    schedule([ada], in_an_hour, "Due")
    schedule([ada], in_an_hour, "Expired", expires_at=in_an_hour - datetime.timedelta(minutes=1))
    schedule([ada], in_an_hour + datetime.timedelta(days=30), "Far future")
    later = in_an_hour + datetime.timedelta(seconds=1)

    with django_capture_on_commit_callbacks() as callbacks:
        first = dispatch_due(now=later)
        second = dispatch_due(now=later)

    assert first == {"dispatched": 1, "expired": 1} and second == {"dispatched": 0, "expired": 0}
    assert len(callbacks) == 1  # one dispatch message for the one live notification
    statuses = dict(Notification.objects.values_list("title", "status"))
    assert statuses == {"Due": "pending", "Expired": "expired", "Far future": "scheduled"}


@pytest.mark.django_db
def test_a_send_for_now_or_the_past_is_dispatched_at_once(make_user, django_capture_on_commit_callbacks):
    ada = make_user("ada")
    with django_capture_on_commit_callbacks() as callbacks:
        [notification] = schedule([ada], timezone.now() - datetime.timedelta(minutes=1), "Late")
    assert notification.status == NotificationStatus.PENDING
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_sync_schedules_creates_keeps_operator_edits_and_disables_removed_entries():
    report = schedules.sync_schedules()
    names = [spec.name for spec in schedules.declared()]
    assert sorted(report["created"]) == sorted(names)
    dispatch = PeriodicTask.objects.get(name="clock: dispatch due notifications")
    assert dispatch.task == "maintenance.dispatch_due_notifications"
    assert (dispatch.interval.every, dispatch.interval.period) == (1, "seconds")
    assert dispatch.expire_seconds and dispatch.enabled

    # An operator slows the reaper down in the admin and disables the digests.
    reaper = PeriodicTask.objects.get(name="clock: reap stuck deliveries")
    reaper.interval, _ = IntervalSchedule.objects.get_or_create(every=120, period="seconds")
    reaper.save()
    PeriodicTask.objects.filter(name="clock: send due digests").update(enabled=False)
    # The code changes the dispatch default and drops the dead-letter summary.
    changed = [
        schedules.Schedule(s.name, s.task, every=3 if s.name == "dispatch due notifications" else s.every,
                           crontab=s.crontab, expires=s.expires, doc=s.doc)
        for s in schedules.declared() if s.name != "dead-letter summary"
    ]

    report = schedules.sync_schedules(changed)

    assert "reap stuck deliveries" in report["kept"]
    assert report["disabled"] == ["dead-letter summary"]
    assert PeriodicTask.objects.get(name="clock: reap stuck deliveries").interval.every == 120
    assert PeriodicTask.objects.get(name="clock: dispatch due notifications").interval.every == 3
    assert not PeriodicTask.objects.get(name="clock: send due digests").enabled
    assert not PeriodicTask.objects.get(name="clock: dead-letter summary").enabled


@pytest.mark.django_db(transaction=True)
def test_a_second_beat_refuses_to_run(beat, worker_env, tmp_path):
    env = {**worker_env, "NOTIFY_BEAT_LOCK_WAIT": "2"}
    second = BeatProcess(env, log_dir=tmp_path, name="second-beat").start(wait_ready=False)
    second.process.wait(timeout=60)
    print("\n" + "\n".join(line for line in second.log().splitlines() if "beat" in line.lower())[-600:])
    assert second.process.returncode != 0
    assert "waiting for it to expire" in second.log() and "another beat is running" in second.log()
    assert beat.process.poll() is None


@pytest.mark.django_db
def test_sync_schedules_command_reports_what_it_did(caplog):
    from io import StringIO

    from django.core.management import call_command

    def sync():
        out = StringIO()
        call_command("sync_schedules", stdout=out)
        return out.getvalue()

    assert sync().startswith("created: dispatch due notifications, send due digests")
    # A restart with no change in the code: nothing is written, and it says so.
    before = list(PeriodicTask.objects.filter(name__startswith="clock: ").order_by("id").values())
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="notifications.schedules"):
        output = sync()
    assert output == "unchanged: " + ", ".join(spec.name for spec in schedules.declared()) + "\n"
    assert list(PeriodicTask.objects.filter(name__startswith="clock: ").order_by("id").values()) == before
    assert not [record for record in caplog.records if record.levelno >= logging.INFO]
    # Code that moved on (an older release's message expiry is in the database): updated.
    PeriodicTask.objects.filter(name="clock: reap stuck deliveries").update(expire_seconds=5)
    output = sync()
    assert output.splitlines()[0] == "updated: reap stuck deliveries"
    assert PeriodicTask.objects.get(name="clock: reap stuck deliveries").expire_seconds == 60
    assert PeriodicTask.objects.filter(name__startswith="clock: ", enabled=True).count() == len(schedules.declared())


@pytest.mark.django_db(transaction=True)
def test_a_beat_restarted_after_a_crash_waits_for_the_dead_ones_lock(worker_env, tmp_path):
    from notifications.clock.beat import LOCK_KEY

    # What a SIGKILLed beat leaves behind: its lock, until the TTL runs out.
    store = redis.Redis.from_url(worker_env["REDIS_URL"])
    store.set(LOCK_KEY, "crashed-host:4242", ex=60)
    beat = BeatProcess({**worker_env, "NOTIFY_BEAT_LOCK_WAIT": "90"}, log_dir=tmp_path, name="restarted-beat")
    try:
        beat.start(wait_ready=False)
        wait_until(lambda: "beat lock held by crashed-host:4242; waiting for it to expire" in beat.log(),
                   timeout=60, message="the restarted beat waiting for the lock")
        time.sleep(1.5)  # it goes on waiting
        assert "beat started" not in beat.log() and beat.process.poll() is None
        store.pexpire(LOCK_KEY, 200)  # the dead one's TTL runs out
        beat.wait_ready(timeout=60)
        assert "beat lock held by crashed-host:4242; waiting for it to expire" in beat.log()
        assert beat.process.poll() is None
    finally:
        beat.stop()
