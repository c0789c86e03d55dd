"""Idempotency-Key: the first answer is replayed for 24 hours; another body with the key is a 422."""

import threading

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import ApiClient, IdempotencyRecord, Notification, WebhookEndpoint
from notifications.tenancy import grant

SEND = "/api/notifications/"
BODY = {"recipients": ["42"], "category": "orders", "title": "Shipped"}


@pytest.fixture
def recipient(make_user):
    return make_user("42")


def post(api, body=BODY, key="order-123-shipped", path=SEND):
    return api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_same_key_replays_the_first_answer(app_api, recipient):
    first = post(app_api)
    again = post(app_api)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_same_key_with_another_body_is_a_422(app_api, recipient):
    post(app_api)
    response = post(app_api, {**BODY, "title": "Delivered"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_scoped_per_client(app_api, recipient, make_user):
    other_client, other_key = ApiClient.issue("Other", make_user("other-app"), scopes=["send"])
    grant(other_client, [recipient])
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert post(app_api).status_code == 202
    assert post(other).status_code == 202
    assert Notification.objects.count() == 2


@pytest.mark.django_db
def test_key_expires_after_24_hours(app_api, recipient):
    post(app_api)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timezone.timedelta(hours=25))
    again = post(app_api)
    assert again.status_code == 202 and "Idempotent-Replayed" not in again
    assert Notification.objects.count() == 2


@pytest.mark.django_db
def test_a_refused_request_is_not_recorded(app_api, recipient):
    assert post(app_api, {**BODY, "category": "nope"}).status_code == 400
    assert post(app_api).status_code == 202
    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_overlong_key_is_a_field_error(app_api, recipient):
    response = post(app_api, key="k" * 256)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_secret_shown_once_is_not_replayed(user_api, recipient):
    api = user_api(recipient)
    first = post(api, {"url": "https://hooks.example.com/in"}, path="/api/me/webhooks/")
    again = post(api, {"url": "https://hooks.example.com/in"}, path="/api/me/webhooks/")
    assert first.status_code == again.status_code == 201
    assert first.json()["secret"].startswith("whsec_")
    assert "secret" not in again.json() and again.json()["id"] == first.json()["id"]
    assert WebhookEndpoint.objects.count() == 1
    assert first.json()["secret"] not in str(IdempotencyRecord.objects.get().response_body)


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_once(sender_key, make_user):
    make_user("42")
    answers = []
    barrier = threading.Barrier(4)

    def send():
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {sender_key}")
        barrier.wait()
        try:
            answers.append(post(api, key="race"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [202] * 4
    assert len({tuple(a.json()["ids"]) for a in answers}) == 1
    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_expired_keys_are_purged_by_the_retention_task(app_api, recipient):
    from notifications.clock import cleanup

    post(app_api, key="old")
    post(app_api, key="new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timezone.timedelta(hours=25))
    report = cleanup.purge()
    assert report["idempotency keys"] == {"notifications.IdempotencyRecord": 1}
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
