"""The "Low" findings of the hardening review, each tried as an attacker would and refused."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from notifications.api import throttling
from notifications.models import (
    ApiClient,
    Broadcast,
    Delivery,
    DeliveryAttempt,
    Notification,
    PushSubscription,
    SlackWebhook,
    WebhookEndpoint,
)
from notifications.tenancy import grant
from tests.support import in_a_fresh_window

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


def key_api(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def send(api, **body):
    return api.post("/api/notifications/", {"category": "orders", "title": "Hi", **body}, format="json")


# --- API keys and their owners ------------------------------------------------------------------

def test_a_key_stops_working_when_its_owner_is_deactivated(make_user):
    owner = make_user("shop-owner")
    client, key = ApiClient.issue("Shop", owner, scopes=["send", "read"])
    grant(client, [make_user("42")])  # the shop's recipient
    assert send(key_api(key), recipients=["42"]).status_code == 202
    owner.is_active = False
    owner.save()
    response = send(key_api(key), recipients=["42"])
    assert response.status_code == 401
    assert Notification.objects.count() == 1


def test_plain_staff_cannot_mint_keys_for_anyone(make_user, user_api):
    staff = make_user("support", is_staff=True)
    victim = make_user("ceo")
    response = user_api(staff).post("/api/clients/", {"name": "x", "owner": "ceo", "scopes": ["admin"]}, format="json")
    assert response.status_code == 403
    assert not ApiClient.objects.filter(owner=victim).exists()
    # Nor revoke someone's key.
    client, _key = ApiClient.issue("Theirs", victim)
    assert user_api(staff).post(f"/api/clients/{client.id}/revoke/").status_code == 403
    assert ApiClient.objects.get(id=client.id).active


def test_an_admin_scope_key_mints_only_if_its_owner_holds_the_permission(make_user):
    owner = make_user("automation")
    _client, admin_key = ApiClient.issue("Ops bot", owner, scopes=["admin"])
    assert key_api(admin_key).post("/api/clients/", {"name": "x"}, format="json").status_code == 403
    owner.user_permissions.add(Permission.objects.get(codename="add_apiclient"))
    assert key_api(admin_key).post("/api/clients/", {"name": "x"}, format="json").status_code == 201


def test_keys_are_not_minted_for_a_deactivated_owner(make_user, user_api):
    manager = make_user("keymaster", is_staff=True)
    manager.user_permissions.add(Permission.objects.get(codename="add_apiclient"))
    make_user("gone", is_active=False)
    response = user_api(manager).post("/api/clients/", {"name": "x", "owner": "gone"}, format="json")
    assert response.status_code == 400 and "owner" in response.json()["error"]["fields"]
    assert ApiClient.objects.count() == 0


# --- what apps may read -------------------------------------------------------------------------

def test_a_send_only_key_cannot_read_explanations(make_user):
    client, send_only = ApiClient.issue("Sender", make_user("sender-app"), scopes=["send"])
    grant(client, [make_user("42")])
    [notification_id] = send(key_api(send_only), recipients=["42"]).json()["ids"]
    response = key_api(send_only).get(f"/api/notifications/{notification_id}/explain/")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


def test_apps_see_that_a_provider_failed_not_its_raw_error(app_api, make_user, sender_key):
    make_user("42")
    [notification_id] = send(app_api, recipients=["42"]).json()["ids"]
    delivery = Delivery.objects.create(
        notification_id=notification_id, channel="sms", status="failed",
        reason="retries exhausted (4 attempts): Twilio 20003 account AC0123456789 suspended",
        last_error="Twilio 20003: account AC0123456789 suspended",
    )
    DeliveryAttempt.objects.create(delivery=delivery, number=1, outcome="permanent_error",
                                   error="Twilio 20003: account AC0123456789 suspended")
    detail = app_api.get(f"/api/notifications/{notification_id}/")
    assert detail.status_code == 200
    assert "AC0123456789" not in detail.content.decode() and "Twilio" not in detail.content.decode()
    [shown] = detail.json()["deliveries"]
    assert shown["reason"] == "retries exhausted (4 attempts)" and shown["last_error"] == "provider error"


def test_broadcasts_answer_usernames_not_internal_user_ids(app_api, make_user):
    alice = make_user("alice")
    answer = app_api.post("/api/notifications/", {"to": {"users": ["alice"]}, "category": "orders", "title": "Hi"},
                          format="json")
    broadcast_id = answer.json()["broadcast_id"]
    assert Broadcast.objects.get().audience["user_ids"] == [alice.pk]  # stored internally
    for response in (app_api.get(f"/api/broadcasts/{broadcast_id}/"), app_api.get("/api/broadcasts/")):
        text = response.content.decode()
        assert response.status_code == 200 and "user_ids" not in text
    assert app_api.get(f"/api/broadcasts/{broadcast_id}/").json()["audience"]["users"] == ["alice"]


# --- contact points ----------------------------------------------------------------------------

@pytest.mark.parametrize("path, body", [
    ("/api/me/webhooks/", lambda n: {"url": f"https://hooks{n}.example.com/in"}),
    ("/api/me/slack-webhooks/", lambda n: {"url": f"https://hooks.slack.com/services/T/B/{n}"}),
    ("/api/me/push-subscriptions/", lambda n: {"endpoint": f"https://push.example.com/{n}",
                                               "keys": {"p256dh": "B" + "A" * 86, "auth": "A" * 22}}),
])
def test_contact_points_per_user_are_capped(make_user, user_api, settings, path, body):
    settings.NOTIFY_MAX_CONTACT_POINTS_PER_USER = 3
    settings.SLACK_WEBHOOK_HOSTS = ["hooks.slack.com"]
    api = user_api(make_user("hoarder"))
    for n in range(3):
        assert api.post(path, body(n), format="json").status_code == 201
    refused = api.post(path, body(99), format="json")
    assert refused.status_code == 400
    assert "At most 3 per user" in str(refused.json()["error"]["fields"])
    total = WebhookEndpoint.objects.count() + SlackWebhook.objects.count() + PushSubscription.objects.count()
    assert total == 3
    if path == "/api/me/push-subscriptions/":  # re-registering a known endpoint is no new one
        assert api.post(path, body(0), format="json").status_code == 200


def test_plain_http_slack_urls_are_refused(make_user, user_api, settings):
    settings.SLACK_WEBHOOK_HOSTS = ["hooks.slack.com"]
    response = user_api(make_user("u")).post(
        "/api/me/slack-webhooks/", {"url": "http://hooks.slack.com/services/T/B/X"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["url"] == ["Slack webhook URLs must use https."]
    assert SlackWebhook.objects.count() == 0


def test_a_stored_http_slack_url_is_not_called(make_user, settings):
    from channels_delivery.channels.slack.channel import SlackMessage
    from channels_delivery.channels.slack.providers import SlackIncomingWebhook
    from channels_delivery.engine.errors import PermanentDeliveryError

    settings.SLACK_WEBHOOK_HOSTS = ["hooks.slack.com"]
    settings.SLACK_WEBHOOK_SCHEMES = ["https"]
    webhook = SlackWebhook.objects.create(user=make_user("u"), url="http://hooks.slack.com/services/T/B/X")
    with pytest.raises(PermanentDeliveryError, match="must use https"):
        SlackIncomingWebhook().send("d-1", SlackMessage.from_dict({"text": "x", "slack_webhook_ids": [webhook.id]}))


def test_slack_fallback_text_cannot_mention_the_channel(make_user):
    from channels_delivery.channels.slack.channel import layout as slack_content

    notification = Notification(recipient=make_user("u"), category_id="orders", title="<!channel> pay now",
                                body="<https://evil.example|click>")
    text = slack_content(notification)["text"]
    assert "<!channel>" not in text and "<https://" not in text
    assert text == "&lt;!channel&gt; pay now\n&lt;https://evil.example|click&gt;"


# --- throttling --------------------------------------------------------------------------------

@pytest.fixture
def tight(settings):
    settings.NOTIFY_THROTTLE_RATES = {**settings.NOTIFY_THROTTLE_RATES, "unsubscribe": "3/minute",
                                      "callback": "3/minute", "login_failures": "3/minute"}
    in_a_fresh_window()  # a minute ending between the requests would start the count again
    return settings


def test_unsubscribe_links_are_throttled_per_address(client, tight):
    answers = [client.get("/unsubscribe/not-a-token/").status_code for _ in range(5)]
    assert 429 not in answers[:3]
    assert answers[3:] == [429, 429]
    response = client.get("/unsubscribe/not-a-token/")
    assert int(response["Retry-After"]) >= 1 and response.json()["error"]["code"] == "throttled"
    # Another address is counted on its own.
    assert client.get("/unsubscribe/not-a-token/", REMOTE_ADDR="10.1.2.3").status_code != 429


def test_provider_callbacks_are_throttled_per_address(client, tight):
    answers = [client.post("/callbacks/sendgrid/events/", data="[]", content_type="application/json").status_code
               for _ in range(4)]
    assert 429 not in answers[:3] and answers[3] == 429


def test_failed_logins_lock_the_address_out_even_with_a_good_key(make_user, tight, sender_key):
    make_user("42")
    for _ in range(3):
        assert key_api("nk_deadbeef.guess").get("/api/notifications/").status_code == 401
    # The guesser's address is refused before any key is checked, the right one included.
    locked = key_api(sender_key).get("/api/notifications/")
    assert locked.status_code == 429 and int(locked["Retry-After"]) >= 1
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token wrong")
    assert bad_token.get("/api/notifications/").status_code == 429
    # Another address is not affected.
    assert key_api(sender_key).get("/api/notifications/", REMOTE_ADDR="10.9.9.9").status_code == 200


def test_failed_user_tokens_count_too(make_user, tight, user_api):
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token nope")
    assert [bad.get("/api/notifications/").status_code for _ in range(4)] == [401, 401, 401, 429]


def test_the_throttle_never_admits_more_than_its_rate_under_concurrency():
    """Fifty requests at once against a limit of 20: exactly 20 pass (a read-then-write counter
    lets racers read the same count and all pass)."""
    allowed, barrier = [], threading.Barrier(50)

    def request():
        barrier.wait()
        allowed.append(throttling.hit("concurrency-test", "20/minute", now=1_000_000.0)[0])

    threads = [threading.Thread(target=request) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 20 and allowed.count(False) == 30


def test_client_throttle_answers_429_with_retry_after(app_api, settings, make_user):
    settings.NOTIFY_THROTTLE_RATES = {**settings.NOTIFY_THROTTLE_RATES, "client": "2/minute"}
    in_a_fresh_window()
    answers = [app_api.get("/api/notifications/") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) >= 1 and answers[2].json()["error"]["code"] == "throttled"


# --- production settings and the schema ----------------------------------------------------------

def deploy_check(**env):
    import os

    environment = {**os.environ, "DJANGO_SECRET_KEY": "x" * 60 + "-not-a-default-value-for-this-check",
                   "DJANGO_ALLOWED_HOSTS": "notify.example.com", **env}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_https_deployments_get_secure_cookies_hsts_and_the_proxy_header():
    from cryptography.fernet import Fernet

    secure = deploy_check(DJANGO_HTTPS="true", NOTIFY_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016", "notifications.E101"):
        assert warning not in secure.stdout + secure.stderr
    plain = deploy_check()
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016", "notifications.E101"):
        assert warning in plain.stdout + plain.stderr


def test_https_settings_redirect_plain_http_and_trust_the_proxy(settings, client):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    assert client.get("/api/notifications/").status_code == 301
    behind_proxy = client.get("/api/notifications/", HTTP_X_FORWARDED_PROTO="https")
    assert behind_proxy.status_code == 401 and "max-age=31536000" in behind_proxy["Strict-Transport-Security"]


def test_schema_and_swagger_are_private_unless_the_setting_opens_them(client, make_user, user_api, app_api):
    assert client.get("/api/schema/").status_code in (401, 403)
    assert client.get("/api/docs/").status_code in (401, 403)
    assert user_api(make_user("someone")).get("/api/schema/").status_code == 403
    assert app_api.get("/api/schema/").status_code == 403
    assert user_api(make_user("ops", is_staff=True)).get("/api/schema/").status_code == 200


def test_a_public_schema_is_a_setting():
    import os

    code = ("import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup();"
            "from django.test import Client; from django.test.utils import setup_test_environment;"
            "setup_test_environment(); print(Client().get('/api/docs/').status_code)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "NOTIFY_PUBLIC_SCHEMA": "true"})
    assert result.stdout.strip().splitlines()[-1] == "200", result.stderr[-2000:]


def test_a_nul_byte_postgres_refuses_is_a_400_not_a_500(make_user, user_api):
    """Found by the stateful schemathesis run: a NUL in a username lookup reached Postgres."""
    manager = make_user("keymaster", is_staff=True)
    manager.user_permissions.add(Permission.objects.get(codename="add_apiclient"))
    response = user_api(manager).post("/api/clients/", {"name": "x", "owner": "a\x00b"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["status"] == 400
    assert ApiClient.objects.count() == 0
