"""Tenants: an API client reaches only the recipients it (or another key of its owner) created
or was granted. The attacks of the issue, each refused with nothing changed."""

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from notifications.planning import audiences
from notifications.models import ApiClient, Broadcast, Notification, RecipientGrant

pytestmark = pytest.mark.django_db

SEND = "/api/notifications/"


def key_api(key):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api


@pytest.fixture
def shop_a(django_user_model):
    owner = django_user_model.objects.create_user("shop-a-owner")
    client, key = ApiClient.issue("Shop A", owner, scopes=["send", "read"])
    return client, key_api(key)


@pytest.fixture
def shop_b(django_user_model):
    owner = django_user_model.objects.create_user("shop-b-owner")
    client, key = ApiClient.issue("Shop B", owner, scopes=["send", "read"])
    return client, key_api(key)


@pytest.fixture
def alice(shop_a):
    """Shop A's customer, onboarded by Shop A, with a role group."""
    _, api = shop_a
    created = api.put("/api/recipients/alice/", {"email": "alice@a.example", "phone": "+14155550123",
                                                 "groups": ["vip"]}, format="json")
    assert created.status_code == 201, created.content
    return User.objects.get(username="alice")


def test_another_client_cannot_read_a_recipient(alice, shop_b):
    _, b = shop_b
    answer = b.get("/api/recipients/alice/")
    assert answer.status_code == 404
    assert "alice@a.example" not in answer.content.decode()
    assert answer.json() == b.get("/api/recipients/no-such-user/").json()  # the same as a missing one


def test_another_client_cannot_redirect_a_recipients_contact_points(alice, shop_b):
    _, b = shop_b
    answer = b.put("/api/recipients/alice/", {"email": "attacker@b.example", "phone": "+14155550199",
                                              "groups": []}, format="json")
    assert answer.status_code == 404
    alice.refresh_from_db()
    assert alice.email == "alice@a.example" and alice.profile.phone == "+14155550123"
    assert list(alice.groups.values_list("name", flat=True)) == ["vip"]
    assert not RecipientGrant.objects.filter(user=alice, client__name="Shop B").exists()


def test_another_client_cannot_send_to_a_recipient_nor_learn_it_exists(alice, shop_b):
    _, b = shop_b
    foreign = b.post(SEND, {"recipients": ["alice"], "category": "orders", "title": "Hi"}, format="json")
    missing = b.post(SEND, {"recipients": ["zed-nobody"], "category": "orders", "title": "Hi"}, format="json")
    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["error"]["fields"]["recipients"] == ["Unknown recipients: alice"]
    assert missing.json()["error"]["fields"]["recipients"] == ["Unknown recipients: zed-nobody"]
    assert not Notification.objects.exists()


def test_a_broadcast_by_users_reaches_only_own_recipients(alice, shop_b):
    _, b = shop_b
    answer = b.post(SEND, {"to": {"users": ["alice"]}, "category": "orders", "title": "Hi"}, format="json")
    assert answer.status_code == 400 and "alice" in answer.json()["error"]["fields"]["to"]["users"][0]


def test_topic_broadcasts_stop_at_the_tenant(alice, shop_a, shop_b):
    """A topic is global; its subscribers from another tenant are not reached."""
    _, a = shop_a
    client_b, b = shop_b
    assert a.put("/api/recipients/alice/", {"topics": ["sales"]}, format="json").status_code == 200
    assert b.put("/api/recipients/bob/", {"topics": ["sales"]}, format="json").status_code == 201
    broadcast_id = b.post(SEND, {"to": {"topics": ["sales"]}, "category": "orders", "title": "Sale"},
                          format="json").json()["broadcast_id"]
    for number in audiences.plan(broadcast_id):
        audiences.fan_out_chunk(broadcast_id, number)
    assert list(Notification.objects.values_list("recipient__username", flat=True)) == ["bob"]


def test_keys_of_one_owner_share_recipients(alice, shop_a):
    client_a, _ = shop_a
    _, rotated = ApiClient.issue("Shop A (rotated key)", client_a.owner, scopes=["send", "read"])
    assert key_api(rotated).get("/api/recipients/alice/").status_code == 200


def test_reading_needs_the_read_scope(alice, shop_a):
    client_a, _ = shop_a
    _, send_only = ApiClient.issue("Shop A sender", client_a.owner, scopes=["send"])
    assert key_api(send_only).get("/api/recipients/alice/").status_code == 403
    assert key_api(send_only).put("/api/recipients/alice/", {"locale": "fr"}, format="json").status_code == 200


def test_an_app_cannot_overwrite_contact_points_the_user_set(alice, shop_a, user_api):
    _, a = shop_a
    assert user_api(alice).put("/api/me/profile/", {"email": "alice@own.example"}, format="json").status_code == 200
    answer = a.put("/api/recipients/alice/", {"email": "alice@a.example", "locale": "de"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"] == {"email": ["The user set this themselves; an app cannot change it."]}
    alice.refresh_from_db()
    assert alice.email == "alice@own.example" and alice.profile.locale == ""
    # The same value again, or fields the user did not set, are fine.
    same = a.put("/api/recipients/alice/", {"email": "alice@own.example", "phone": "+14155550100"}, format="json")
    assert same.status_code == 200 and same.json()["phone"] == "+14155550100"


def test_admin_scope_crosses_tenants(alice, django_user_model):
    _, key = ApiClient.issue("Ops", django_user_model.objects.create_user("ops-owner"), scopes=["admin"])
    assert key_api(key).get("/api/recipients/alice/").json()["email"] == "alice@a.example"


# --- scopes for reaching many, and for critical categories -----------------------------------

def test_broadcast_to_all_or_groups_needs_the_broadcast_scope(alice, shop_a):
    client_a, a = shop_a
    Group.objects.get_or_create(name="vip")
    for to in ({"all": True}, {"groups": ["vip"]}):
        answer = a.post(SEND, {"to": to, "category": "orders", "title": "Hi"}, format="json")
        assert answer.status_code == 403 and "'broadcast' scope" in answer.json()["error"]["message"]
    assert not Broadcast.objects.exists()
    client_a.scopes = ["send", "broadcast"]
    client_a.save()
    assert a.post(SEND, {"to": {"all": True}, "category": "orders", "title": "Hi"}, format="json").status_code == 202


def test_critical_categories_need_the_critical_scope(alice, shop_a):
    client_a, a = shop_a
    body = {"recipients": ["alice"], "category": "system", "title": "Account locked", "channels": ["sms"]}
    answer = a.post(SEND, body, format="json")
    assert answer.status_code == 403 and "'critical' scope" in answer.json()["error"]["message"]
    assert not Notification.objects.exists()
    client_a.scopes = ["send", "critical"]
    client_a.save()
    assert a.post(SEND, body, format="json").status_code == 202


# --- recipients per minute ---------------------------------------------------------------------

def test_recipients_per_minute_quota_answers_429(shop_a, settings):
    import redis

    store = redis.Redis.from_url(settings.CACHES["throttle"]["LOCATION"])
    for key in store.scan_iter("throttle:*"):  # only the quotas: the broker and channel layer share the database
        store.delete(key)
    settings.NOTIFY_CLIENT_RECIPIENTS_PER_MINUTE = 5
    client_a, a = shop_a
    for number in range(6):
        assert a.put(f"/api/recipients/c{number}/", {}, format="json").status_code == 201
    first = a.post(SEND, {"recipients": ["c0", "c1", "c2"], "category": "orders", "title": "Hi"}, format="json")
    assert first.status_code == 202
    store.script_flush()  # as after a Redis restart: the quota's script is loaded again, the count kept
    over = a.post(SEND, {"recipients": ["c3", "c4", "c5"], "category": "orders", "title": "Hi"}, format="json")
    assert over.status_code == 429 and int(over["Retry-After"]) >= 1
    assert over.json()["error"]["status"] == 429
    assert Notification.objects.count() == 3  # the refused send stored nothing
    client_a.scopes = ["send", "broadcast"]
    client_a.save()
    broadcast = a.post(SEND, {"to": {"all": True}, "category": "orders", "title": "Hi"}, format="json")
    assert broadcast.status_code == 429 and not Broadcast.objects.exists()  # an audience counts its size
    assert a.post(SEND, {"recipients": ["c3", "c4"], "category": "orders", "title": "Hi"},
                  format="json").status_code == 202  # what is left of the minute


def test_an_operator_grants_a_recipient_in_the_admin(client, alice, shop_b, django_user_model):
    client_b, b = shop_b
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    added = client.post("/admin/notifications/recipientgrant/add/", {"user": alice.pk, "client": client_b.pk})
    assert added.status_code == 302
    assert b.get("/api/recipients/alice/").status_code == 200
