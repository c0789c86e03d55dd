"""Named retry policies: each shape's waits, which policy a delivery falls under, and the waits a
real worker keeps against the fake SendGrid, as the attempt log and /explain/ show them."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from channels_delivery.engine import backoff
from channels_delivery.engine.checks import check_retry_policies
from notifications.models import Category, Delivery, DeliveryStatus
from tests.support import reset_engine_state, send, wait_until



def policy(**spec):
    return backoff.parse_policy("p", spec)


# --- shapes --------------------------------------------------------------------------------

def test_each_shape_waits_as_specified_without_jitter():
    exact = {"jitter": 0, "max_attempts": 10, "cap": 1000}
    assert [policy(shape="exponential", factor=1, **exact).wait(n) for n in range(5)] == [1, 2, 4, 8, 16]
    assert [policy(shape="linear", factor=30, **exact).wait(n) for n in range(4)] == [30, 60, 90, 120]
    assert [policy(shape="fibonacci", factor=1, **exact).wait(n) for n in range(7)] == [1, 1, 2, 3, 5, 8, 13]
    fixed = policy(shape="fixed", delays=[1, 5, 30, 300], **exact)
    assert [fixed.wait(n) for n in range(6)] == [1, 5, 30, 300, 300, 300]  # the last delay repeats


def test_cap_bounds_one_wait_and_retry_after_still_wins():
    capped = policy(shape="exponential", factor=1, cap=10, jitter=0)
    assert [capped.wait(n) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert capped.wait(0, retry_after="30") == 30  # the provider asked for longer
    assert capped.wait(5, retry_after=2) == 10


def test_jitter_takes_at_most_its_share_off_and_does_spread():
    jittered = policy(shape="linear", factor=10, jitter=0.2, cap=100)
    waits = [jittered.wait(2) for _ in range(200)]
    assert all(24 <= wait <= 30 for wait in waits)
    assert len({round(wait, 3) for wait in waits}) > 100
    assert policy(shape="fixed", delays=[5], jitter=True).jitter == 0.5  # True means equal jitter


def test_max_attempts_counts_the_first_try():
    assert policy(shape="fixed", delays=[1, 5], max_attempts=3).max_retries == 2


@pytest.mark.parametrize("spec, message", [
    ({"shape": "square"}, "shape must be one of"),
    ({"shape": "fixed"}, "needs its delays"),
    ({"max_attempts": 0}, "max_attempts >= 1"),
    ({"jitter": 2}, "jitter <= 1"),
    ({"delay": [1]}, "unknown keys delay"),
])
def test_a_bad_policy_is_refused_with_its_reason(spec, message):
    with pytest.raises(ValueError, match=message):
        policy(**spec)


# --- choice --------------------------------------------------------------------------------

@pytest.fixture
def policies(settings):
    settings.NOTIFY_RETRY_POLICIES = {
        "fixed": {"shape": "fixed", "delays": [1, 5, 30, 300], "max_attempts": 5, "jitter": 0},
        "slow": {"shape": "linear", "factor": 60},
    }
    settings.NOTIFY_CHANNEL_RETRY_POLICY = {"sms": "slow"}
    settings.NOTIFY_CATEGORY_RETRY_POLICY = {"security": "fixed"}
    settings.NOTIFY_PRIORITY_RETRY_POLICY = {"urgent": "fixed"}
    settings.NOTIFY_STATUS_EVENT_RETRY_POLICY = "fixed"
    return settings


def test_category_overrides_priority_which_overrides_the_channel(policies):
    assert backoff.policy_for("sms", "orders", "medium")[0].name == "slow"
    assert backoff.policy_for("sms", "orders", "medium")[1] == "channel sms"
    assert backoff.policy_for("sms", "orders", "urgent")[1] == "priority urgent"
    assert backoff.policy_for("sms", "security", "low")[1] == "category security"
    default, why = backoff.policy_for("email", "orders", "medium")
    assert why == "channel email default" and default.shape == "exponential"
    assert default.max_retries == policies.NOTIFY_RETRY["email"]["max_retries"]


def test_system_check_names_unknown_policies_and_bad_shapes(policies):
    assert check_retry_policies() == []
    policies.NOTIFY_PRIORITY_RETRY_POLICY = {"urgent": "fixd"}
    policies.NOTIFY_RETRY_POLICIES = {**policies.NOTIFY_RETRY_POLICIES, "odd": {"shape": "cubic"}}
    messages = [error.msg for error in check_retry_policies()]
    assert any("shape must be one of" in message for message in messages)
    assert "NOTIFY_PRIORITY_RETRY_POLICY: urgent names unknown retry policy 'fixd'" in messages
    with pytest.raises(SystemCheckError):
        call_command("check")


# --- end to end: a real worker, the fake SendGrid answering 503 ------------------------------

@pytest.fixture
def retry_categories(db):
    for key in ("retry-fixed", "retry-fibonacci"):
        Category.objects.get_or_create(key=key, defaults={"name": key})
    reset_engine_state()
    yield
    reset_engine_state()


def failing_email(app_api, sendgrid, make_user, failures, **send_options):
    make_user("ret", email="ret@example.com")
    sendgrid.fail_next(failures, status=503, body=b'{"errors":[{"message":"busy"}]}')
    [notification_id] = send(app_api, recipients=["ret"], channels=["email"], **send_options)
    return notification_id


def settled(notification_id, status):
    return wait_until(
        lambda: Delivery.objects.filter(notification_id=notification_id, status=status).first(),
        timeout=30, message=f"email {status}",
    )


def waits_kept(delivery, expected):
    attempts = list(delivery.attempts.order_by("number"))
    recorded = [a.retry_wait_seconds for a in attempts if a.outcome == "transient_error"]
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in zip(attempts, attempts[1:])]
    assert gaps and all(gap >= wait - 0.05 for gap, wait in zip(gaps, expected)), (gaps, expected)
    return attempts, recorded


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_fixed_policy_of_a_category_waits_its_list_and_shows_in_explain(
    celery_worker, sendgrid, app_api, make_user, retry_categories
):
    # category retry-fixed -> test-fixed (0.2, 0.6, 1.0 s; 4 attempts), although the send is low
    # priority, whose own policy (test-linear) loses to the category's.
    notification_id = failing_email(app_api, sendgrid, make_user, 3, category="retry-fixed", priority="low")

    delivery = settled(notification_id, DeliveryStatus.SENT)
    attempts, recorded = waits_kept(delivery, [0.2, 0.6, 1.0])
    assert recorded == [0.2, 0.6, 1.0]
    assert [a.outcome for a in attempts] == ["transient_error"] * 3 + ["sent"]
    assert all(a.retry_policy.startswith("test-fixed: fixed 0.2, 0.6, 1 s, 4 attempts") for a in attempts[:3])
    assert attempts[0].retry_policy.endswith("(by category retry-fixed)")

    explained = app_api.get(f"/api/notifications/{notification_id}/explain/").json()
    [shown] = explained["deliveries"]
    assert [a["retry_wait_seconds"] for a in shown["attempts"]] == [0.2, 0.6, 1.0, None]
    assert shown["attempts"][0]["retry_policy"] == attempts[0].retry_policy


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_linear_policy_of_a_priority_gives_up_after_its_max_attempts(celery_worker, sendgrid, app_api, make_user,
                                                                     retry_categories):
    notification_id = failing_email(app_api, sendgrid, make_user, 4, priority="low")

    delivery = settled(notification_id, DeliveryStatus.FAILED)
    attempts, recorded = waits_kept(delivery, [0.3, 0.6, 0.9])
    assert recorded[:3] == pytest.approx([0.3, 0.6, 0.9]) and recorded[3] is None  # none after the 4th
    assert len(attempts) == 4 and len(sendgrid.received) == 4
    assert delivery.reason.startswith("retries exhausted (4 attempts)")
    assert attempts[-1].retry_policy.startswith("test-linear: linear x0.3 s, 4 attempts")
    assert attempts[-1].retry_policy.endswith("(by priority low)")


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_fibonacci_policy_waits_grow_as_the_sequence(celery_worker, sendgrid, app_api, make_user, retry_categories):
    # 3 failures: a 4th would open the test circuit (NOTIFY_CIRCUIT_FAILURES=4) for 3 s.
    notification_id = failing_email(app_api, sendgrid, make_user, 3, category="retry-fibonacci")

    delivery = settled(notification_id, DeliveryStatus.SENT)
    _attempts, recorded = waits_kept(delivery, [0.2, 0.2, 0.4])
    assert recorded == pytest.approx([0.2, 0.2, 0.4])
