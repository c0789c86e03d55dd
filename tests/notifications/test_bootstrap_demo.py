"""bootstrap_demo, which bin/serve runs at every start: the key and token it prints keep working."""

import re
import stat
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from notifications.models import ApiClient

pytestmark = pytest.mark.django_db


def bootstrap(key_file):
    out = StringIO()
    call_command("bootstrap_demo", key_file=key_file, stdout=out)
    text = out.getvalue()
    key = re.search(r"Demo API key (nk_\S+)", text).group(1)
    token = re.search(r'Token of the user "demo" \(an end user\): (\w+)', text).group(1)
    return text, key, token


def as_app(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def send_to_demo(key):
    body = {"recipients": ["demo"], "category": "orders", "title": "Order 123 shipped", "channels": ["inapp"]}
    return as_app(key).post("/api/notifications/", body, format="json")


def test_a_second_start_prints_the_same_key_and_it_still_works(tmp_path):
    key_file = tmp_path / "run" / "demo-api-key.test"
    first, key, _token = bootstrap(key_file)
    assert "(new, kept in" in first
    assert send_to_demo(key).status_code == 202

    second, again, _token = bootstrap(key_file)

    assert again == key and "the same as at the last start" in second
    assert send_to_demo(key).status_code == 202
    # Kept for its owner alone; the database holds only the hash.
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == key
    client = ApiClient.objects.get(name="Demo app")
    assert key.split(".", 1)[1] not in client.key_hash and client.key_hash == ApiClient.hash_secret(key.split(".", 1)[1])


def test_a_key_that_no_longer_opens_the_app_is_replaced(tmp_path):
    key_file = tmp_path / "demo-api-key.test"
    _out, key, _token = bootstrap(key_file)
    ApiClient.objects.filter(name="Demo app").update(active=False)  # an operator revoked it

    _out, replacement, _token = bootstrap(key_file)

    assert replacement != key and key_file.read_text().strip() == replacement
    assert send_to_demo(key).status_code == 401
    assert send_to_demo(replacement).status_code == 202
    assert ApiClient.objects.filter(name="Demo app").count() == 1


def test_a_lost_or_widened_key_file_gets_a_new_key_readable_by_its_owner_only(tmp_path):
    key_file = tmp_path / "demo-api-key.test"
    key_file.write_text("nk_garbage.notakey\n")
    key_file.chmod(0o644)

    _out, key, _token = bootstrap(key_file)

    assert key.startswith("nk_") and send_to_demo(key).status_code == 202
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_printed_user_token_reads_the_demo_users_inbox(tmp_path):
    _out, key, token = bootstrap(tmp_path / "demo-api-key.test")
    [notification_id] = send_to_demo(key).json()["ids"]
    _out, _key, same_token = bootstrap(tmp_path / "demo-api-key.test")
    assert same_token == token

    user = APIClient()
    user.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    inbox = user.get("/api/notifications/")
    assert inbox.status_code == 200
    assert [item["id"] for item in inbox.json()["results"]] == [notification_id]
    assert user.get("/api/notifications/unread-count/").json() == {"unread": 1}
