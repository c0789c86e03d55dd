"""A chunk's claim (channels_delivery/engine/chunks.py): one UPDATE ... RETURNING takes the rows
and brings back what the chunk reads of their notifications, converted as the ORM converts it."""

import uuid
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.utils import timezone

from channels_delivery.engine.chunks import claim
from notifications.encryption import is_token
from notifications.models import Category, Delivery, DeliveryStatus, Notification, categories_cache
from notifications.tasks import dispatch_notifications

pytestmark = pytest.mark.django_db


@pytest.fixture
def sensitive(settings):
    settings.NOTIFY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    yield Category.objects.create(key="health", name="Health results", sensitive=True)
    categories_cache.forget()


def planned(app_api, make_user, name, category="orders", channels=("inapp",)):
    make_user(name, email=f"{name}@example.com")
    answer = app_api.post("/api/notifications/", {
        "recipients": [name], "category": category, "title": f"Hello {name}", "message": "The result is 7731",
        "priority": "high", "channels": list(channels),
    }, format="json")
    assert answer.status_code == 202, answer.content
    [notification_id] = answer.json()["ids"]
    dispatch_notifications([notification_id])
    return Delivery.objects.get(notification_id=notification_id, channel=channels[0])


def test_the_claim_returns_the_rows_as_the_orm_reads_them_with_their_notifications_fields(
        app_api, make_user, sensitive):
    delivery = planned(app_api, make_user, "patient", category="health")
    expires = timezone.now() + timedelta(hours=1)
    Notification.objects.filter(id=delivery.notification_id).update(expires_at=expires)
    with connection.cursor() as cursor:
        cursor.execute("SELECT message::text FROM notifications_delivery WHERE id = %s", [delivery.id])
        assert is_token(cursor.fetchone()[0].strip('"'))  # sealed in its column
    token = uuid.uuid4()

    [row] = claim([str(delivery.id)], token)

    fresh = Delivery.objects.get(id=delivery.id)
    assert (row.status, row.claim_token, row.attempt_count) == (DeliveryStatus.SENDING, token, 1)
    assert row.message == fresh.message and "7731" in str(row.message)  # opened, as the ORM opens it
    assert {f.attname: getattr(row, f.attname) for f in Delivery._meta.concrete_fields} == {
        f.attname: getattr(fresh, f.attname) for f in Delivery._meta.concrete_fields}
    notification = row.notification
    assert (notification.id, notification.expires_at, notification.category_id, notification.priority) == (
        delivery.notification_id, expires, "health", "high")
    assert notification.created_at == Notification.objects.get(id=delivery.notification_id).created_at


def test_only_queued_rows_are_claimed_and_a_resumed_claim_takes_its_own_sending_rows_again(app_api, make_user):
    queued = planned(app_api, make_user, "ada")
    held = planned(app_api, make_user, "bob")
    Delivery.objects.filter(id=held.id).update(status=DeliveryStatus.SENDING, claim_token=(earlier := uuid.uuid4()))
    sent = planned(app_api, make_user, "cy")
    Delivery.objects.filter(id=sent.id).update(status=DeliveryStatus.SENT)
    ids = [str(queued.id), str(held.id), str(sent.id)]

    assert [row.id for row in claim(ids, uuid.uuid4())] == [queued.id]
    assert claim(ids, uuid.uuid4()) == []  # nothing queued is left; another run's claim is not taken
    [resumed] = claim(ids, earlier, resume=earlier)
    assert (resumed.id, resumed.attempt_count) == (held.id, held.attempt_count)  # a resume is not a new attempt
