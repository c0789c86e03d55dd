"""A send's `data` and `context` are copied per recipient and per delivery, so each is capped:
larger or deeper ones are a 400 with a field error and nothing is stored."""

import json

import pytest

from notifications.models import Broadcast, Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(make_user):
    return make_user("ada")


def send(api, **body):
    return api.post("/api/notifications/", {"category": "orders", "title": "Hi", **body}, format="json")


@pytest.mark.parametrize("field", ["data", "context"])
def test_a_payload_over_its_cap_is_a_400_and_nothing_is_stored(app_api, ada, field, settings):
    settings.NOTIFY_MAX_DATA_BYTES = settings.NOTIFY_MAX_CONTEXT_BYTES = 4096
    big = {"blob": "x" * 5000}
    for target in ({"recipients": ["ada"] * 1}, {"to": {"all": True}}):
        answer = send(app_api, **target, **{field: big})
        assert answer.status_code == 400, answer.content
        assert "at most 4096 are allowed" in answer.json()["error"]["fields"][field][0]
    assert not Notification.objects.exists() and not Broadcast.objects.exists()


def test_a_payload_at_its_cap_passes(app_api, ada, settings):
    settings.NOTIFY_MAX_DATA_BYTES = 4096
    data = {"blob": "x" * 4000}
    assert len(json.dumps(data, separators=(",", ":"))) <= 4096
    assert send(app_api, recipients=["ada"], data=data).status_code == 202


def test_a_deeply_nested_payload_is_a_400(app_api, ada):
    deep = {}
    for _ in range(40):
        deep = {"a": deep}
    answer = send(app_api, recipients=["ada"], data=deep)
    assert answer.status_code == 400
    assert "nests deeper than 16" in answer.json()["error"]["fields"]["data"][0]


def test_a_body_nested_past_the_parser_is_a_400_not_a_500(app_api, ada):
    body = '{"recipients": ["ada"], "category": "orders", "title": "x", "data": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    answer = app_api.generic("POST", "/api/notifications/", body, content_type="application/json")
    assert answer.status_code == 400, answer.content
    assert not Notification.objects.exists()


def test_one_mebibyte_of_data_for_a_thousand_recipients_is_refused_before_any_copy(app_api, make_user):
    """The attack of the issue: a body near the upload limit, for 1,000 recipients."""
    for number in range(3):
        make_user(f"user{number}")
    data = {"blob": "x" * (900 * 1024)}
    answer = send(app_api, recipients=[f"user{n}" for n in range(3)] * 333, data=data)
    assert answer.status_code == 400
    assert "data" in answer.json()["error"]["fields"]
    assert not Notification.objects.exists()


def test_the_send_serializer_reused_by_a_thread_keeps_nothing_of_the_request_before(app_api, ada, make_user):
    """Each thread re-arms one SendNotificationSerializer (its fields are built once): what one
    request sent, or got wrong, never reaches the next, and threads never share one."""
    import threading

    from notifications.api.serializers import SendNotificationSerializer

    make_user("bob")
    first = send(app_api, recipients=["ada"], title="first", data={"order": 1})
    assert first.status_code == 202
    wrong = send(app_api, recipients=["nobody"], title="")
    assert wrong.status_code == 400
    assert set(wrong.json()["error"]["fields"]) == {"recipients", "title"}
    second = send(app_api, recipients=["bob"], title="second")
    assert second.status_code == 202
    stored = {n.title: (n.recipient.username, n.data) for n in Notification.objects.select_related("recipient")}
    assert stored == {"first": ("ada", {"order": 1}), "second": ("bob", {})}
    again = send(app_api, recipients=["ada"], category="no-such-category")
    assert again.status_code == 400 and set(again.json()["error"]["fields"]) == {"category"}

    mine = SendNotificationSerializer.reused(data={}, context={})
    assert SendNotificationSerializer.reused(data={}, context={}) is mine
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(SendNotificationSerializer.reused(data={}, context={})))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
