"""A broadcast end to end on a real worker: API -> plan -> chunk tasks -> dispatch -> in-app delivery."""

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from notifications.clock import broadcasts
from notifications.models import ApiClient, Broadcast, BroadcastChunk, Delivery, DeliveryStatus, Notification
from notifications.planning import audiences
from notifications.tenancy import grant
from tests.support import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_group_broadcast_fans_out_in_chunks_and_delivers(celery_worker, app_api):
    members = User.objects.bulk_create(User(username=f"member{n}", email=f"m{n}@example.com") for n in range(35))
    grant(ApiClient.objects.get(), members)  # recipients of the app
    group = Group.objects.create(name="customers")
    group.user_set.add(*members)

    response = app_api.post(
        "/api/notifications/",
        {"to": {"groups": ["customers"]}, "category": "general", "title": "Spring sale", "channels": ["inapp"]},
        format="json",
    )
    assert response.status_code == 202, response.content
    broadcast_id = response.json()["broadcast_id"]

    wait_until(
        lambda: app_api.get(f"/api/broadcasts/{broadcast_id}/").json()["status"] == "done",
        timeout=60, message="broadcast done",
    )
    progress = app_api.get(f"/api/broadcasts/{broadcast_id}/").json()
    assert (progress["total"], progress["created"]) == (35, 35)
    # The worker runs with NOTIFY_BROADCAST_CHUNK_SIZE=10.
    assert progress["chunks_total"] == 4 == BroadcastChunk.objects.filter(broadcast_id=broadcast_id).count()
    wait_until(
        lambda: Delivery.objects.filter(
            notification__broadcast_id=broadcast_id, channel="inapp", status=DeliveryStatus.DELIVERED
        ).count() == 35,
        timeout=60, message="35 in-app deliveries sent",
    )
    assert Notification.objects.filter(broadcast_id=broadcast_id).count() == 35
    assert Broadcast.objects.get(id=broadcast_id).finished_at is not None


def test_stalled_broadcast_is_resumed_and_finishes(celery_worker, app_api, settings):
    """The fan-out messages were lost (a flushed Redis) after one chunk: resuming finishes the rest."""
    settings.NOTIFY_BROADCAST_CHUNK_SIZE = 10  # as the worker's
    late = User.objects.bulk_create(User(username=f"late{n}") for n in range(25))
    client = ApiClient.objects.get()
    grant(client, late)
    stalled = Broadcast.objects.create(
        sender=client, audience={"user_ids": [], "groups": [], "topics": [], "all": True},
        payload={"category": "general", "title": "Late", "priority": "low", "channels": ["inapp"]},
    )
    numbers = audiences.plan(stalled.id)
    audiences.fan_out_chunk(stalled.id, numbers[0])
    Broadcast.objects.filter(id=stalled.id).update(created_at=timezone.now() - timezone.timedelta(hours=1))
    young = Broadcast.objects.create(sender=client, audience={"all": True}, payload=stalled.payload)

    assert broadcasts.resume_stalled() == 1

    wait_until(lambda: Broadcast.objects.get(id=stalled.id).status == "done", timeout=60, message="resumed")
    assert Notification.objects.filter(broadcast=stalled).count() == len(late)  # all of the app's recipients
    assert Broadcast.objects.get(id=young.id).status == "pending"
