"""Resolution of switches (user, groups, system), critical categories, quiet hours, and planning."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from notifications.clock import scheduled
from notifications.models import (
    Category,
    ChannelPreference,
    Delivery,
    GroupPreference,
    Notification,
    NotificationStatus,
    QuietHours,
    RecipientProfile,
    Template,
)
from notifications.planning import planner
from notifications.planning.preferences import DEFER, SEND, SKIP, decide
from notifications.tasks import dispatch_notifications

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def ada(make_user):
    return make_user("ada")


def group(name, user, **switches):
    group, _ = Group.objects.get_or_create(name=name)
    group.user_set.add(user)
    for (category, channel), enabled in switches.get("prefs", {}).items():
        GroupPreference.objects.create(group=group, category_id=category, channel=channel, enabled=enabled)
    return group


def test_everything_is_on_by_default(ada):
    decision = decide(ada, "orders", "email", NOON)
    assert decision.action == SEND and decision.reason == "switched on by default"


def test_user_switch_for_a_channel(ada):
    ChannelPreference.objects.create(user=ada, channel="email", enabled=False)
    assert decide(ada, "orders", "email", NOON) == decide(ada, "messages", "email", NOON)
    assert decide(ada, "orders", "email", NOON).reason == "switched off by user"
    assert decide(ada, "orders", "inapp", NOON).action == SEND


def test_a_category_switch_beats_the_channel_switch_of_the_same_level(ada):
    ChannelPreference.objects.create(user=ada, channel="push", enabled=False)
    ChannelPreference.objects.create(user=ada, category_id="orders", channel="push", enabled=True)
    assert decide(ada, "orders", "push", NOON).action == SEND
    assert decide(ada, "messages", "push", NOON).reason == "switched off by user"


def test_user_beats_groups_and_groups_beat_system(ada):
    group("admins", ada, prefs={("orders", "email"): False})
    assert decide(ada, "orders", "email", NOON).reason == "switched off for category orders by group admins"
    ChannelPreference.objects.create(user=ada, category_id="orders", channel="email", enabled=True)
    assert decide(ada, "orders", "email", NOON).reason == "switched on for category orders by user"


def test_when_groups_disagree_any_group_switching_on_wins(ada):
    group("support", ada, prefs={(None, "sms"): False})
    group("oncall", ada, prefs={(None, "sms"): True})
    assert decide(ada, "orders", "sms", NOON).reason == "switched on by group oncall"
    Group.objects.get(name="oncall").user_set.remove(ada)
    assert decide(ada, "orders", "sms", NOON).reason == "switched off by group support"


def test_groups_of_other_users_do_not_count(ada, make_user):
    group("night", make_user("bob"), prefs={(None, "email"): False})
    assert decide(ada, "orders", "email", NOON).action == SEND


@override_settings(NOTIFY_CHANNELS_OFF_BY_DEFAULT=["sms"], NOTIFY_CATEGORY_CHANNELS_OFF_BY_DEFAULT={"orders": ["push"]})
def test_system_defaults_come_last(ada):
    assert decide(ada, "orders", "sms", NOON).reason == "switched off by default"
    assert decide(ada, "orders", "push", NOON).reason == "switched off for category orders by default"
    assert decide(ada, "messages", "push", NOON).action == SEND
    ChannelPreference.objects.create(user=ada, channel="sms", enabled=True)
    assert decide(ada, "orders", "sms", NOON).action == SEND


def test_critical_categories_ignore_stored_offs_and_quiet_hours(ada):
    assert Category.objects.get(key="system").critical
    ChannelPreference.objects.create(user=ada, channel="email", enabled=False)
    ChannelPreference.objects.create(user=ada, category_id="system", channel="email", enabled=False)
    QuietHours.objects.create(user=ada, timezone="UTC", start=time(0, 0), end=time(23, 59))
    decision = decide(ada, "system", "email", NOON)
    assert decision.action == SEND and decision.reason == "category system is critical"


def test_quiet_hours_defer_to_the_end_of_the_window(ada):
    QuietHours.objects.create(user=ada, timezone="Europe/Paris", start=time(13, 0), end=time(15, 0))
    decision = decide(ada, "orders", "email", NOON)  # 14:00 in Paris
    assert decision.action == DEFER
    assert decision.until == datetime(2026, 6, 10, 13, 0, tzinfo=UTC)
    assert decision.reason == "quiet hours until 2026-06-10T15:00+02:00 (Europe/Paris)"


def test_a_switched_off_channel_is_skipped_even_in_quiet_hours(ada):
    ChannelPreference.objects.create(user=ada, channel="email", enabled=False)
    QuietHours.objects.create(user=ada, timezone="UTC", start=time(11, 0), end=time(13, 0))
    assert decide(ada, "orders", "email", NOON).action == SKIP


def notify(user, category="orders", channels=("inapp", "email"), **extra):
    return Notification.objects.create(
        recipient=user, category_id=category, title="Hi", routes=[[channel] for channel in channels], **extra
    )


def test_plan_records_every_skip_with_its_reason(ada, make_user):
    ChannelPreference.objects.create(user=ada, channel="inapp", enabled=False)
    bob = make_user("bob", email="")
    [inapp, email] = planner.plan(notify(ada), now=NOON)
    assert (inapp.status, inapp.reason) == ("skipped", "switched off by user")
    assert email.status == "queued" and email.message["to"] == "ada@example.com"
    [_, no_email] = planner.plan(notify(bob), now=NOON)
    assert (no_email.status, no_email.reason) == ("skipped", "no contact point")


def test_dispatch_defers_in_quiet_hours_and_does_not_defer_again_at_the_window_end(ada, monkeypatch):
    window_end = datetime(2026, 6, 10, 13, 0, tzinfo=UTC)
    QuietHours.objects.create(user=ada, timezone="Europe/Paris", start=time(13, 0), end=time(15, 0))
    notification = notify(ada)
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOON)
    dispatch_notifications([str(notification.id)])
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SCHEDULED and notification.scheduled_at == window_end
    assert not Delivery.objects.filter(notification=notification).exists()
    assert list(Notification.objects.due(window_end)) == [notification]
    assert notification.trace[0]["event"] == "deferred"

    # The beat task moves due notifications back to pending and enqueues their dispatch.
    monkeypatch.setattr("django.utils.timezone.now", lambda: window_end)
    assert scheduled.dispatch_due(window_end)["dispatched"] == 1
    dispatch_notifications([str(notification.id)])
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.DISPATCHED
    assert set(notification.deliveries.values_list("status", flat=True)) == {"queued"}
    assert [e["reason"] for e in notification.trace if e["event"] == "planned"] == ["switched on by default"] * 2


def test_deferred_once_means_sent_at_the_promised_time_even_if_quiet_hours_moved(ada):
    quiet = QuietHours.objects.create(user=ada, timezone="UTC", start=time(11, 0), end=time(13, 0))
    notification = notify(ada)
    assert planner.plan(notification, now=NOON) == []
    quiet.start, quiet.end = time(12, 0), time(18, 0)
    quiet.save()
    deliveries = planner.plan(notification, now=notification.scheduled_at)
    assert [d.status for d in deliveries] == ["queued", "queued"]
    assert deliveries[0].reason == "" and notification.trace[-1]["reason"] == "quiet hours over (deferred once)"


def test_a_notification_expiring_inside_quiet_hours_is_skipped_not_deferred(ada):
    QuietHours.objects.create(user=ada, timezone="UTC", start=time(11, 0), end=time(13, 0))
    notification = notify(ada, expires_at=NOON + timedelta(minutes=30))
    deliveries = planner.plan(notification, now=NOON)
    assert {d.status for d in deliveries} == {"skipped"}
    assert deliveries[0].reason.startswith("quiet hours until 2026-06-10T13:00+00:00 (UTC)")
    assert notification.status == NotificationStatus.PENDING


def test_critical_notification_goes_out_during_quiet_hours(ada):
    QuietHours.objects.create(user=ada, timezone="UTC", start=time(11, 0), end=time(13, 0))
    deliveries = planner.plan(notify(ada, category="system"), now=NOON)
    assert [d.status for d in deliveries] == ["queued", "queued"]


def test_planning_a_batch_costs_the_same_queries_for_2_or_40_recipients(make_user):
    Template.objects.create(key="orders", channel="email", subject="Order {{ n }}", body="b", variables=["n"])
    Template.objects.create(key="orders", channel="email", locale="pt", subject="Pedido {{ n }}", body="b",
                            variables=["n"])
    helpers = Group.objects.create(name="helpers")

    def batch(size, prefix):
        ids = []
        for number in range(size):
            user = make_user(f"{prefix}{number}")
            RecipientProfile.objects.create(user=user, locale="pt-BR" if number % 2 else "")
            ChannelPreference.objects.create(user=user, channel="inapp", enabled=bool(number % 3))
            helpers.user_set.add(user)
            ids.append(str(notify(user, context={"n": number}).id))
        with CaptureQueriesContext(connection) as queries:
            dispatch_notifications(ids)
        return len(queries)

    batch(2, "warm")  # categories and both channels' templates come from the process cache afterwards
    assert batch(2, "a") == batch(40, "b")
    subjects = set(Delivery.objects.filter(channel="email").values_list("message__subject", flat=True))
    assert "Pedido 1" in subjects and "Order 0" in subjects
