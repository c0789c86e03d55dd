"""The caller's inbox: filters, ordering, read/seen/archived marks, read-all, unread count."""

import pytest
from django.utils import timezone

from notifications.models import Notification

pytestmark = pytest.mark.django_db

INBOX = "/api/notifications/"


@pytest.fixture
def ada(make_user):
    return make_user("ada")


@pytest.fixture
def inbox(ada):
    now = timezone.now()
    rows = [
        ("orders", "low", "pending", 5, None),
        ("orders", "urgent", "delivered", 4, now),
        ("messages", "high", "delivered", 3, None),
        ("system", "medium", "failed", 2, None),
    ]
    return [
        Notification.objects.create(
            recipient=ada, category_id=category, title=f"{category}-{priority}", priority=priority, status=status,
            created_at=now - timezone.timedelta(hours=hours_ago), read_at=read_at,
        )
        for category, priority, status, hours_ago, read_at in rows
    ]


def titles(response):
    assert response.status_code == 200, response.content
    return [n["title"] for n in response.json()["results"]]


def test_filters(user_api, ada, inbox):
    api = user_api(ada)
    assert titles(api.get(INBOX, {"category": "orders"})) == ["orders-urgent", "orders-low"]
    assert titles(api.get(INBOX, {"status": "delivered"})) == ["messages-high", "orders-urgent"]
    assert "orders-urgent" not in titles(api.get(INBOX, {"unread": "true"}))
    assert titles(api.get(INBOX, {"unread": "false"})) == ["orders-urgent"]
    since = (timezone.now() - timezone.timedelta(hours=3, minutes=30)).isoformat()
    assert titles(api.get(INBOX, {"since": since})) == ["system-medium", "messages-high"]


def test_ordering(user_api, ada, inbox):
    api = user_api(ada)
    assert titles(api.get(INBOX, {"ordering": "created_at"}))[0] == "orders-low"
    assert titles(api.get(INBOX, {"ordering": "-priority"})) == [
        "orders-urgent", "messages-high", "system-medium", "orders-low"
    ]
    assert titles(api.get(INBOX, {"ordering": "priority"}))[0] == "orders-low"


@pytest.mark.parametrize(
    "params, field",
    [({"status": "nope"}, "status"), ({"unread": "perhaps"}, "unread"), ({"since": "yesterday"}, "since"),
     ({"ordering": "title"}, "ordering")],
)
def test_bad_filters_are_field_errors(user_api, ada, inbox, params, field):
    response = user_api(ada).get(INBOX, params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("mark, field", [("read", "read_at"), ("seen", "seen_at"), ("archived", "archived_at")])
@pytest.mark.parametrize("slash", ["", "/"])
def test_marks_set_and_clear(user_api, ada, inbox, mark, field, slash):
    api = user_api(ada)
    notification = inbox[0]
    url = f"{INBOX}{notification.id}/{mark}{slash}"
    response = api.put(url)
    assert response.status_code == 200 and response.json()[field]
    first = getattr(Notification.objects.get(id=notification.id), field)
    api.put(url)
    assert getattr(Notification.objects.get(id=notification.id), field) == first  # keeps the first time
    assert api.delete(url).json()[field] is None


def test_archived_filter(user_api, ada, inbox):
    api = user_api(ada)
    api.put(f"{INBOX}{inbox[0].id}/archived")
    assert titles(api.get(INBOX, {"archived": "true"})) == ["orders-low"]
    assert "orders-low" not in titles(api.get(INBOX, {"archived": "false"}))


def test_read_all_and_unread_count(user_api, ada, inbox, make_user):
    other = make_user("bob")
    Notification.objects.create(recipient=other, category_id="orders", title="theirs")
    api = user_api(ada)
    assert api.get(f"{INBOX}unread-count/").json() == {"unread": 3}
    assert api.post(f"{INBOX}read-all/").json() == {"updated": 3}
    assert api.get(f"{INBOX}unread-count").json() == {"unread": 0}
    assert Notification.objects.get(title="theirs").read_at is None


def test_only_the_recipient_may_mark(user_api, app_api, ada, inbox, make_user):
    notification = inbox[0]
    assert user_api(make_user("mallory")).put(f"{INBOX}{notification.id}/read").status_code == 404
    assert app_api.put(f"{INBOX}{notification.id}/read").status_code == 403
    assert Notification.objects.get(id=notification.id).read_at is None


def test_detail_of_own_notification(user_api, ada, inbox):
    response = user_api(ada).get(f"{INBOX}{inbox[0].id}/")
    assert response.status_code == 200 and response.json()["deliveries"] == []


def test_staff_see_any_notification_but_keep_their_own_inbox(user_api, ada, inbox, make_user):
    operator = user_api(make_user("operator", is_staff=True))
    assert operator.get(f"{INBOX}{inbox[0].id}/").status_code == 200
    assert operator.get(INBOX).json()["total"] == 0
    assert operator.put(f"{INBOX}{inbox[0].id}/read").status_code == 404  # only the recipient marks
