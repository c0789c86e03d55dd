"""The API's sends wait in their lane's list and one drain task plans what waits together
(notifications/planning/dispatch.py): nothing is lost when the drain's wake-up, the drain itself
or the planning of a batch fails."""

import threading
import time

import pytest
from celery.signals import before_task_publish

from config.celery import PRIORITY_LANES
from config.celery import app as celery_app
from notifications import shared_state
from notifications import tasks as dispatch_tasks
from notifications.clock import reaper
from notifications.models import Delivery, DeliveryStatus, Notification
from notifications.planning import dispatch
from tests.support import send, wait_until

MEDIUM = PRIORITY_LANES["medium"]


@pytest.fixture
def published():
    """[(task name, args, priority)] of every message published during the test."""
    seen = []

    def record(sender=None, body=None, properties=None, **kwargs):
        args = body[0] if isinstance(body, (list, tuple)) else body["args"]
        seen.append((sender, list(args), properties.get("priority")))

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)
    celery_app.control.purge()


def waiting(lane=MEDIUM):
    return [i.decode() for i in shared_state.client().lrange(dispatch.waiting_key(lane), 0, -1)]


def awake(lane=MEDIUM):
    return bool(shared_state.client().exists(dispatch.awake_key(lane)))


def hold_lane(lane=MEDIUM):
    """Mark the lane awake, as while its drain is busy: sends wait in the list, nobody is woken.
    (The session's worker, once started by an earlier test, would drain a woken lane at once.)"""
    shared_state.client().set(dispatch.awake_key(lane), 1, ex=30)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_sends_that_wait_together_are_planned_and_delivered_together(celery_worker, app_api, make_user, published):
    names = [f"co{n}" for n in range(6)]
    for name in names:
        make_user(name)
    hold_lane()
    ids = [i for name in names for i in send(app_api, recipients=[name], channels=["inapp"])]
    assert waiting() == ids and published == []

    dispatch.wake(MEDIUM)

    wait_until(lambda: Delivery.objects.filter(notification_id__in=ids, status=DeliveryStatus.DELIVERED).count()
               == 6, timeout=30, message="six in-app deliveries")
    # One drain planned all six together, so they went out as one in-app chunk (one claim of six
    # rows), not as six single deliveries; then the lane went back to sleep.
    tokens = Delivery.objects.filter(notification_id__in=ids).values_list("claim_token", flat=True)
    assert len(set(tokens)) == 1 and None not in tokens
    wait_until(lambda: not awake(), timeout=10, message="the lane asleep")
    assert waiting() == []


@pytest.mark.django_db(transaction=True)
def test_a_send_to_a_sleeping_lane_wakes_one_drain_in_its_priority(app_api, make_user, published):
    make_user("ada")
    send(app_api, recipients=["ada"], channels=["inapp"], priority="urgent")
    send(app_api, recipients=["ada"], channels=["inapp"], priority="low")

    assert sorted((name, args[0], priority) for name, args, priority in published) == [
        (dispatch.DRAIN_TASK, PRIORITY_LANES["urgent"], PRIORITY_LANES["urgent"]),
        (dispatch.DRAIN_TASK, PRIORITY_LANES["low"], PRIORITY_LANES["low"]),
    ]


@pytest.mark.django_db(transaction=True)
def test_an_awake_lane_takes_more_sends_without_another_wake_up(app_api, make_user, published):
    make_user("ada")
    make_user("bob")
    hold_lane()
    first = send(app_api, recipients=["ada"], channels=["inapp"])
    second = send(app_api, recipients=["bob"], channels=["inapp"])

    assert waiting() == first + second and published == []


@pytest.mark.django_db(transaction=True)
def test_each_priority_waits_in_its_own_lane(app_api, make_user, published):
    make_user("ada")
    hold_lane(PRIORITY_LANES["urgent"])
    hold_lane(PRIORITY_LANES["low"])
    urgent = send(app_api, recipients=["ada"], channels=["inapp"], priority="urgent")
    low = send(app_api, recipients=["ada"], channels=["inapp"], priority="low")

    assert waiting(PRIORITY_LANES["urgent"]) == urgent and waiting(PRIORITY_LANES["low"]) == low


@pytest.mark.django_db(transaction=True)
def test_a_lane_whose_drain_was_lost_is_woken_by_the_reaper(published):
    # Ids wait, but the drain's message was lost (a broker restart) and its awake mark expired.
    shared_state.client().rpush(dispatch.waiting_key(MEDIUM), "00000000-0000-0000-0000-000000000001")

    assert reaper.reap()["sends waiting in a sleeping lane"] == 1
    assert [(name, args) for name, args, _ in published] == [(dispatch.DRAIN_TASK, [MEDIUM])]

    # A lane that is awake is left to its drain.
    low = PRIORITY_LANES["low"]
    shared_state.client().rpush(dispatch.waiting_key(low), "00000000-0000-0000-0000-000000000002")
    hold_lane(low)
    published.clear()
    assert reaper.reap()["sends waiting in a sleeping lane"] == 0 and published == []


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_fails_to_plan_goes_on_one_message_per_notification(
    app_api, make_user, published, monkeypatch
):
    for name in ("ada", "bob", "cy"):
        make_user(name)
    hold_lane()
    ids = [i for name in ("ada", "bob", "cy") for i in send(app_api, recipients=[name], channels=["inapp"])]

    def refuse_batches(notification_ids):
        raise RuntimeError("a row that breaks planning")

    monkeypatch.setattr(dispatch_tasks, "plan_and_enqueue", refuse_batches)
    assert dispatch_tasks.drain_dispatch.run(MEDIUM) == 0

    assert [(name, args) for name, args, _ in published] == [(dispatch.DISPATCH_TASK, [[i]]) for i in ids]
    assert waiting() == [] and not awake()


@pytest.mark.django_db(transaction=True)
def test_a_backlog_is_handed_to_other_dispatch_processes_in_whole_batches(published):
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(dispatch.DISPATCH_BATCH * 3 + 3)]
    shared_state.client().rpush(dispatch.waiting_key(MEDIUM), *ids)

    dispatch_tasks.drain_dispatch.run(MEDIUM)  # the last 503 are planned here (none exists)

    batches = [args[0] for name, args, _ in published if name == dispatch.DISPATCH_TASK]
    assert batches == [ids[:dispatch.DISPATCH_BATCH], ids[dispatch.DISPATCH_BATCH:2 * dispatch.DISPATCH_BATCH]]
    assert waiting() == [] and not awake()


@pytest.mark.django_db(transaction=True)
def test_shared_redis_unreachable_refuses_the_send_and_keeps_nothing(app_api, make_user, settings):
    from tests.support import free_port

    make_user("ada")
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = app_api.post("/api/notifications/", {"recipients": ["ada"], "category": "orders", "title": "Hi"},
                            format="json")

    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert Notification.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_with_coalescing_off_each_send_is_its_own_dispatch_message(app_api, make_user, published, settings):
    settings.NOTIFY_DISPATCH_COALESCE = False
    make_user("ada")
    ids = send(app_api, recipients=["ada"], channels=["inapp"])

    assert [(name, args) for name, args, _ in published] == [(dispatch.DISPATCH_TASK, [ids])]
    assert waiting() == []


FIRST, SECOND = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"


def drain_with_a_late_send(monkeypatch, late_by):
    """Run a drain over one waiting id while a second send arrives `late_by` seconds later;
    returns the batches it planned."""
    batches = []
    monkeypatch.setattr(dispatch_tasks, "plan_and_enqueue", lambda ids: batches.append(list(ids)) or 0)
    shared_state.client().rpush(dispatch.waiting_key(MEDIUM), FIRST)
    later = threading.Timer(late_by, lambda: shared_state.client().rpush(dispatch.waiting_key(MEDIUM), SECOND))
    later.start()
    dispatch_tasks.drain_dispatch.run(MEDIUM)
    later.join()
    assert waiting() == [] and not awake()
    return batches


@pytest.mark.django_db(transaction=True)
def test_a_drain_gathers_for_a_moment_when_told_to(published, settings, monkeypatch):
    settings.NOTIFY_DISPATCH_GATHER, settings.NOTIFY_DISPATCH_LINGER = 0.3, 0.05
    # The second came while the first was gathering: one batch.
    assert drain_with_a_late_send(monkeypatch, late_by=0.1) == [[FIRST, SECOND]]


@pytest.mark.django_db(transaction=True)
def test_an_idle_drain_lingers_for_the_next_send_before_the_lane_sleeps(published, settings, monkeypatch):
    settings.NOTIFY_DISPATCH_LINGER = 1.0
    # The same drain took both, one after the other: no second wake-up.
    assert drain_with_a_late_send(monkeypatch, late_by=0.3) == [[FIRST], [SECOND]] and published == []


@pytest.mark.django_db(transaction=True)
def test_sends_that_waited_while_the_batch_before_was_planned_are_not_held_for_another_gathering(
        published, settings, monkeypatch):
    settings.NOTIFY_DISPATCH_GATHER, settings.NOTIFY_DISPATCH_LINGER = 0.6, 0.05
    planned = []

    def plan(ids):
        planned.append((list(ids), time.monotonic()))
        if len(planned) == 1:
            time.sleep(0.8)  # the second send arrives meanwhile, and has gathered long enough by its end
        return 0

    monkeypatch.setattr(dispatch_tasks, "plan_and_enqueue", plan)
    shared_state.client().rpush(dispatch.waiting_key(MEDIUM), FIRST)
    later = threading.Timer(0.9, lambda: shared_state.client().rpush(dispatch.waiting_key(MEDIUM), SECOND))
    started = time.monotonic()
    later.start()
    dispatch_tasks.drain_dispatch.run(MEDIUM)
    later.join()

    (first, first_at), (second, second_at) = planned
    assert (first, second) == ([FIRST], [SECOND])
    assert first_at - started >= 0.6  # the first gathered its full window
    assert second_at - first_at < 0.8 + 0.3  # the second not another 0.6 s after the first's planning
