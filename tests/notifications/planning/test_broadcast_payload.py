"""A broadcast's data and context are stored once, on the Broadcast, and referenced by every
recipient's notification, not copied into each row."""

import pytest
from django.db import connection

from notifications.planning import audiences, planner
from notifications.models import Broadcast, Notification, Template
from notifications.tasks import dispatch_notifications

pytestmark = pytest.mark.django_db

DATA = {"order": 123, "blob": "x" * 4000}


def fan_out(broadcast_id):
    for number in audiences.plan(broadcast_id):
        audiences.fan_out_chunk(broadcast_id, number)


def raw_column(table, column, where):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column}::text FROM {table} WHERE {where}")
        return [row[0] for row in cursor.fetchall()]


def test_rows_reference_the_payload_and_channels_still_see_it(app_api, make_user):
    users = [make_user(f"u{n}") for n in range(5)]
    Template.objects.create(key="orders", channel="email", subject="Order {{ order_id }}", body="{{ data.order }}",
                            variables=["order_id"])
    answer = app_api.post("/api/notifications/", {"to": {"users": [u.username for u in users]}, "category": "orders",
                                                  "title": "Hi", "data": DATA, "context": {"order_id": "A-1"},
                                                  "channels": ["email", "webhook"]}, format="json")
    assert answer.status_code == 202, answer.content
    broadcast_id = answer.json()["broadcast_id"]
    fan_out(broadcast_id)

    table = Notification._meta.db_table
    stored = raw_column(table, "data", f"broadcast_id = '{broadcast_id}'")
    assert stored == ["{}"] * 5  # nothing copied per recipient
    assert raw_column(table, "context", f"broadcast_id = '{broadcast_id}'") == ["{}"] * 5
    assert Broadcast.objects.get(id=broadcast_id).payload["data"] == DATA  # stored once

    notification = Notification.objects.filter(broadcast_id=broadcast_id).first()
    [email, _webhook] = planner.plan(notification)
    assert (email.message["subject"], email.message["text"]) == ("Order A-1", "123")
    inbox = app_api.get(f"/api/notifications/{notification.id}/").json()
    assert inbox["data"] == DATA


def test_dispatching_a_broadcast_chunk_reads_its_payload_once(app_api, make_user, django_assert_max_num_queries,
                                                             django_capture_on_commit_callbacks):
    users = [make_user(f"u{n}") for n in range(20)]
    broadcast_id = app_api.post("/api/notifications/", {"to": {"users": [u.username for u in users]},
                                                        "category": "orders", "title": "Hi", "data": DATA,
                                                        "channels": ["inapp"]}, format="json").json()["broadcast_id"]
    fan_out(broadcast_id)
    ids = [str(pk) for pk in Notification.objects.filter(broadcast_id=broadcast_id).values_list("id", flat=True)]
    with django_capture_on_commit_callbacks():
        with django_assert_max_num_queries(20):  # a fixed number whatever the batch size
            dispatch_notifications.run(ids)
