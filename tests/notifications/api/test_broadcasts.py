"""Audiences: users, groups, topic subscribers or everyone, fanned out in chunks by tasks."""

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from notifications.models import ApiClient, Broadcast, RecipientGrant, BroadcastChunk, Notification, NotificationStatus, Topic
from notifications.planning import audiences

pytestmark = pytest.mark.django_db

SEND = "/api/notifications/"


def broadcast(api, to, **overrides):
    body = {"to": to, "category": "system", "title": "Maintenance tonight", "message": "22:00 UTC"}
    body.update(overrides)
    return api.post(SEND, body, format="json")


def make_users(count, prefix="u"):
    """Users in bulk, recipients of the app under test (every client existing so far)."""
    users = User.objects.bulk_create(User(username=f"{prefix}{n}", email=f"{prefix}{n}@example.com") for n in range(count))
    RecipientGrant.objects.bulk_create(RecipientGrant(client=client, user=user)
                                       for client in ApiClient.objects.all() for user in users)
    return users


def run_fan_out(broadcast_id):
    for number in audiences.plan(broadcast_id):
        audiences.fan_out_chunk(broadcast_id, number)


def test_audience_answers_202_with_a_broadcast_id(app_api, make_user):
    make_user("42")
    response = broadcast(app_api, {"users": ["42"]})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["ids"] == [] and body["status"] == "accepted"
    stored = Broadcast.objects.get(id=body["broadcast_id"])
    assert stored.status == "pending" and stored.payload["title"] == "Maintenance tonight"
    assert Notification.objects.count() == 0  # nothing fanned out inside the request


def test_union_of_users_groups_and_topics_without_duplicates(app_api, make_user):
    ops, dev, both, topical, outsider = (make_user(name) for name in ["ops1", "dev1", "both", "topical", "outsider"])
    admins = Group.objects.create(name="admins")
    admins.user_set.add(ops, both)
    topic = Topic.objects.create(key="releases")
    topic.subscribers.add(topical, both)
    inactive = make_user("gone", is_active=False)
    admins.user_set.add(inactive)

    broadcast_id = broadcast(app_api, {"users": ["dev1", "both"], "groups": ["admins"], "topics": ["releases"]}).json()[
        "broadcast_id"
    ]
    run_fan_out(broadcast_id)

    recipients = sorted(Notification.objects.filter(broadcast_id=broadcast_id).values_list("recipient__username", flat=True))
    assert recipients == ["both", "dev1", "ops1", "topical"]
    assert outsider.username not in recipients
    stored = Broadcast.objects.get(id=broadcast_id)
    assert (stored.status, stored.total_recipients, stored.notifications_created) == ("done", 4, 4)


def test_all_reaches_every_active_user(app_api, make_user):
    make_users(5)
    broadcast_id = broadcast(app_api, {"all": True}).json()["broadcast_id"]
    run_fan_out(broadcast_id)
    # The 5 users, the app's recipients; not its owner account "acme-app", nor another app's users.
    recipients = Notification.objects.filter(broadcast_id=broadcast_id).values_list("recipient__username", flat=True)
    assert sorted(recipients) == [f"u{n}" for n in range(5)]


@pytest.mark.parametrize(
    "to, field",
    [
        ({}, "non_field_errors"),
        ({"all": False}, "non_field_errors"),
        ({"users": ["nobody"]}, "users"),
        ({"groups": ["no-such-group"]}, "groups"),
        ({"topics": ["no-such-topic"]}, "topics"),
        ({"users": "42"}, "users"),
        ({"all": "maybe"}, "all"),
    ],
)
def test_bad_audiences_are_field_errors(app_api, make_user, to, field):
    make_user("42")
    response = broadcast(app_api, to)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]["to"]
    assert Broadcast.objects.count() == 0


def test_recipients_and_to_together_are_refused(app_api, make_user):
    make_user("42")
    response = broadcast(app_api, {"users": ["42"]}, recipients=["42"])
    assert response.status_code == 400
    assert "recipients" in response.json()["error"]["fields"]


def test_fan_out_is_a_constant_number_of_queries_per_chunk(app_api, settings, django_assert_max_num_queries):
    settings.NOTIFY_BROADCAST_CHUNK_SIZE = 1000
    make_users(3500)
    broadcast_id = broadcast(app_api, {"all": True}).json()["broadcast_id"]
    total = 3500  # the app's recipients (not its own owner account)

    # Planning takes 7 statements and each of the 4 chunks 11 (savepoints included; the rows go in
    # one INSERT ... SELECT), whatever the chunk size; one round trip per recipient would be thousands.
    # 7 to plan, 11 per chunk, and 1 once per process: which categories are sensitive (encrypted).
    with django_assert_max_num_queries(7 + 4 * 11 + 1):
        run_fan_out(broadcast_id)

    assert Notification.objects.filter(broadcast_id=broadcast_id).count() == total
    stored = Broadcast.objects.get(id=broadcast_id)
    assert (stored.status, stored.total_recipients, stored.notifications_created) == ("done", total, total)
    assert BroadcastChunk.objects.filter(broadcast_id=broadcast_id).count() == 4


def test_a_chunk_that_runs_again_inserts_nobody_twice(app_api, settings):
    settings.NOTIFY_BROADCAST_CHUNK_SIZE = 10
    make_users(25)
    broadcast_id = broadcast(app_api, {"all": True}).json()["broadcast_id"]
    run_fan_out(broadcast_id)
    before = Notification.objects.filter(broadcast_id=broadcast_id).count()

    # A redelivered message after the chunk finished does nothing...
    assert audiences.fan_out_chunk(broadcast_id, 0) == 0
    # ...and even a chunk whose done mark was lost re-inserts nothing (ON CONFLICT DO NOTHING).
    BroadcastChunk.objects.filter(broadcast_id=broadcast_id, number=1).update(done_at=None)
    assert audiences.fan_out_chunk(broadcast_id, 1) == 10
    # Planning again keeps the chunk boundaries and finds nothing left to do.
    assert audiences.plan(broadcast_id) == []

    assert Notification.objects.filter(broadcast_id=broadcast_id).count() == before
    assert Broadcast.objects.get(id=broadcast_id).notifications_created == before


def test_chunks_are_fixed_by_user_id_ranges(app_api, settings):
    settings.NOTIFY_BROADCAST_CHUNK_SIZE = 10
    users = make_users(25)
    broadcast_id = broadcast(app_api, {"users": [u.username for u in users]}).json()["broadcast_id"]
    audiences.plan(broadcast_id)
    ids = sorted(u.pk for u in User.objects.filter(username__in=[u.username for u in users]))
    bounds = list(BroadcastChunk.objects.filter(broadcast_id=broadcast_id).values_list("first_user_id", "last_user_id"))
    assert bounds == [(ids[0], ids[9]), (ids[10], ids[19]), (ids[20], ids[24])]


def test_empty_audience_finishes_at_once(app_api, make_user):
    group = Group.objects.create(name="empty")
    broadcast_id = broadcast(app_api, {"groups": [group.name]}).json()["broadcast_id"]
    assert audiences.plan(broadcast_id) == []
    stored = Broadcast.objects.get(id=broadcast_id)
    assert stored.status == "done" and stored.total_recipients == 0


def test_scheduled_broadcast_holds_its_notifications(app_api, make_user):
    make_user("42")
    broadcast_id = broadcast(app_api, {"users": ["42"]}, scheduled_at="2099-01-01T00:00:00Z").json()["broadcast_id"]
    run_fan_out(broadcast_id)
    notification = Notification.objects.get(broadcast_id=broadcast_id)
    assert notification.status == NotificationStatus.SCHEDULED
    assert notification.scheduled_at.year == 2099


def test_progress_is_visible_to_the_sender_only(app_api, make_user, user_api):
    make_user("42")
    broadcast_id = broadcast(app_api, {"users": ["42"]}).json()["broadcast_id"]
    run_fan_out(broadcast_id)

    progress = app_api.get(f"/api/broadcasts/{broadcast_id}/").json()
    assert progress["status"] == "done"
    assert (progress["total"], progress["created"], progress["chunks_total"], progress["chunks_done"]) == (1, 1, 1, 1)
    assert app_api.get("/api/broadcasts/").json()["total"] == 1

    other_owner = make_user("other-app")
    _client, other_key = ApiClient.issue("Other", other_owner, scopes=["send", "read"])
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert other.get(f"/api/broadcasts/{broadcast_id}/").status_code == 404
    assert user_api(User.objects.get(username="42")).get(f"/api/broadcasts/{broadcast_id}/").status_code == 403


def test_each_notification_carries_the_whole_payload(app_api, make_user):
    make_user("42")
    response = broadcast(
        app_api, {"users": ["42"]}, category="orders", title="Sale", message="Today only", priority="high",
        data={"sku": 7}, channels=["inapp", ["push", "email"]], expires_at="2099-01-01T00:00:00Z",
    )
    broadcast_id = response.json()["broadcast_id"]
    run_fan_out(broadcast_id)
    notification = Notification.objects.get(broadcast_id=broadcast_id)
    assert (notification.category_id, notification.title, notification.body) == ("orders", "Sale", "Today only")
    assert (notification.priority, notification.payload_data, notification.status) == ("high", {"sku": 7}, "pending")
    assert notification.routes == [["inapp"], ["push", "email"]]
    assert notification.channels == ["inapp", "push", "email"]
    assert notification.sender.name == "Acme shop" and notification.expires_at.year == 2099
    assert notification.recipient.username == "42" and notification.trace == []



def test_beat_resumes_stalled_broadcasts():
    from config.celery import app
    from notifications.clock.schedules import declared

    [entry] = [s for s in declared() if s.task == "maintenance.resume_stalled_broadcasts"]
    assert entry.every == 60
    app.loader.import_default_modules()
    assert "maintenance.resume_stalled_broadcasts" in app.tasks
