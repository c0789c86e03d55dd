"""What an in-app chunk hands to the channel layer (events.publish_inapp_deliveries): each
user's new notifications, oldest first, then the user's unread count, from one query."""

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import Notification
from notifications.realtime import events

pytestmark = pytest.mark.django_db


def test_a_chunk_publishes_each_users_notifications_then_their_unread_count(
        make_user, monkeypatch, django_capture_on_commit_callbacks):
    ada, bob = make_user("ada"), make_user("bob")
    now = timezone.now()
    Notification.objects.create(recipient=ada, category_id="orders", title="old, read", read_at=now)
    Notification.objects.create(recipient=ada, category_id="orders", title="old, unread")
    Notification.objects.create(recipient=ada, category_id="orders", title="archived", archived_at=now)
    first = Notification.objects.create(recipient=ada, category_id="orders", title="first")
    second = Notification.objects.create(recipient=ada, category_id="orders", title="second")
    bobs = Notification.objects.create(recipient=bob, category_id="orders", title="for bob", read_at=now)
    handed = []
    monkeypatch.setattr(events, "send_to_users", handed.append)
    sent = [(None, SimpleNamespace(notification_id=n.id)) for n in (second, bobs, first)]

    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        events.publish_inapp_deliveries(sent)

    assert len(queries) == 1
    [per_user] = handed
    assert [m.get("title", m["type"]) for m in per_user[ada.pk]] == ["first", "second", "unreadCount"]
    assert per_user[ada.pk][-1] == {"type": "unreadCount", "count": 3}  # old unread, first, second
    assert per_user[bob.pk][-1] == {"type": "unreadCount", "count": 0}  # a user with none unread
