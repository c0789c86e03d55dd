"""Contact points: profile, Web Push subscriptions, webhook endpoints, Slack webhooks, recipients."""

import base64
import os

import pytest
from django.contrib.auth.models import User

from notifications.models import PushSubscription, RecipientProfile, SlackWebhook, WebhookEndpoint

pytestmark = pytest.mark.django_db

PROFILE = "/api/me/profile/"


def b64(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


P256DH = b64(b"\x04" + os.urandom(64))
AUTH = b64(os.urandom(16))


# --- profile ----------------------------------------------------------------------------------

def test_profile_read_and_update(api, ada):
    assert api.get(PROFILE).json() == {"id": "ada", "email": "ada@example.com", "phone": "", "locale": "",
                                       "timezone": "UTC"}
    response = api.put(PROFILE, {"email": "ada@lovelace.org", "phone": "+44 20 7946 0958", "locale": "en_GB",
                                 "timezone": "Europe/London"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"id": "ada", "email": "ada@lovelace.org", "phone": "+442079460958",
                               "locale": "en-GB", "timezone": "Europe/London"}
    profile = RecipientProfile.objects.get(user=ada)
    assert (profile.phone, profile.timezone) == ("+442079460958", "Europe/London")
    assert api.patch(PROFILE, {"locale": "fr"}, format="json").json()["phone"] == "+442079460958"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"phone": "12345"}, "phone"),
        ({"phone": "+1 555 000"}, "phone"),
        ({"phone": "not a number"}, "phone"),
        ({"phone": 4420794609}, "phone"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": ["Europe/Paris"]}, "timezone"),
        ({"locale": "english please"}, "locale"),
        ({"email": "not-an-email"}, "email"),
    ],
)
def test_bad_profile_is_a_field_error(api, ada, body, field):
    response = api.put(PROFILE, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not RecipientProfile.objects.filter(user=ada).exists()


def test_profile_is_for_users_not_api_keys(app_api):
    assert app_api.get(PROFILE).status_code == 403


# --- Web Push ---------------------------------------------------------------------------------

def subscription(endpoint="https://push.example.com/send/abc", **keys):
    return {"endpoint": endpoint, "keys": {"p256dh": P256DH, "auth": AUTH, **keys}, "user_agent": "Firefox"}


def test_push_register_upserts_and_unregisters(api, ada):
    first = api.post("/api/me/push-subscriptions/", subscription(), format="json")
    assert first.status_code == 201, first.content
    assert "keys" not in first.json() and first.json()["endpoint"].endswith("/abc")
    again = api.post("/api/me/push-subscriptions/", subscription(), format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert PushSubscription.objects.get().p256dh == P256DH

    api.post("/api/me/push-subscriptions/", subscription("https://push.example.com/send/def"), format="json")
    assert api.get("/api/me/push-subscriptions/").json()["total"] == 2
    assert api.delete(f"/api/me/push-subscriptions/{first.json()['id']}/").status_code == 204
    gone = api.post("/api/me/push-subscriptions/unregister/", {"endpoint": "https://push.example.com/send/def"},
                    format="json")
    assert gone.status_code == 204
    assert PushSubscription.objects.count() == 0
    again = api.post("/api/me/push-subscriptions/unregister/", {"endpoint": "https://push.example.com/send/def"},
                     format="json")
    assert again.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        subscription(p256dh=b64(b"short")),
        subscription(auth="!!!not base64!!!"),
        subscription(endpoint="not a url"),
        {"endpoint": "https://push.example.com/x"},
    ],
)
def test_bad_push_subscription_is_a_400(api, body):
    response = api.post("/api/me/push-subscriptions/", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"]


def test_another_user_cannot_touch_my_subscription(api, user_api, make_user):
    created = api.post("/api/me/push-subscriptions/", subscription(), format="json").json()
    mallory = user_api(make_user("mallory"))
    assert mallory.delete(f"/api/me/push-subscriptions/{created['id']}/").status_code == 404
    assert mallory.get("/api/me/push-subscriptions/").json()["total"] == 0
    assert PushSubscription.objects.count() == 1


# --- webhooks and Slack -----------------------------------------------------------------------

def test_webhook_secret_is_shown_once(api, ada):
    created = api.post("/api/me/webhooks/", {"url": "https://hooks.example.com/notify", "description": "CRM"},
                       format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret == WebhookEndpoint.objects.get().secret
    listing = api.get("/api/me/webhooks/")
    assert secret not in listing.content.decode()
    assert api.post("/api/me/webhooks/", {"url": "ftp://nope"}, format="json").status_code == 400
    assert api.delete(f"/api/me/webhooks/{created.json()['id']}/").status_code == 204


def test_slack_webhook_url_is_not_echoed(api, ada):
    url = "https://hooks.slack.com/services/T000/B000/XXXXsecretpart"
    created = api.post("/api/me/slack-webhooks/", {"url": url, "channel_name": "#ops"}, format="json")
    assert created.status_code == 201, created.content
    assert url not in created.content.decode() and created.json()["url_hint"] == "hooks.slack.com/…part"
    assert SlackWebhook.objects.get().url == url
    assert api.get("/api/me/slack-webhooks/").json()["total"] == 1


# --- recipients (apps onboard their users) ---------------------------------------------------

def test_app_upserts_a_recipient(app_api):
    body = {"email": "new@example.com", "phone": "+14155550123", "locale": "de", "timezone": "Europe/Berlin",
            "groups": ["customers"], "topics": ["releases"]}
    created = app_api.put("/api/recipients/cust-77/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json() == {"id": "cust-77", "email": "new@example.com", "phone": "+14155550123", "locale": "de",
                              "timezone": "Europe/Berlin", "groups": ["customers"], "topics": ["releases"]}
    updated = app_api.put("/api/recipients/cust-77", {"groups": [], "timezone": "UTC"}, format="json")
    assert updated.status_code == 200 and updated.json()["groups"] == [] and updated.json()["topics"] == ["releases"]
    assert app_api.get("/api/recipients/cust-77/").json()["timezone"] == "UTC"
    assert User.objects.filter(username="cust-77").count() == 1


def test_recipient_upsert_validates_and_protects_operators(app_api, make_user):
    bad = app_api.put("/api/recipients/cust-78/", {"phone": "+1 000", "timezone": "Nowhere/City"}, format="json")
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"phone", "timezone"}
    assert not User.objects.filter(username="cust-78").exists()
    make_user("root", is_staff=True)
    assert app_api.put("/api/recipients/root/", {"email": "evil@example.com"}, format="json").status_code == 404
    assert app_api.get("/api/recipients/root/").status_code == 404
    assert User.objects.get(username="root").email == "root@example.com"


def test_end_users_cannot_upsert_recipients(api):
    assert api.put("/api/recipients/someone/", {}, format="json").status_code == 403


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/me/webhooks/", {"url": "http://127.0.0.1:8080/hook"}),
        ("/api/me/webhooks/", {"url": "http://localhost/hook"}),
        ("/api/me/webhooks/", {"url": "http://169.254.169.254/latest/meta-data/"}),
        ("/api/me/webhooks/", {"url": "http://[::1]/hook"}),
        ("/api/me/push-subscriptions/", subscription("http://10.0.0.5/push")),
        ("/api/me/slack-webhooks/", {"url": "https://evil.example.com/services/T/B/X"}),
    ],
)
def test_unreachable_or_foreign_targets_are_refused(api, path, body, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    response = api.post(path, body, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) & {"url", "endpoint"}
    assert not WebhookEndpoint.objects.exists() and not PushSubscription.objects.exists()


def test_allow_list_opens_a_private_webhook_target(api, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    assert api.post("/api/me/webhooks/", {"url": "http://127.0.0.1:8080/hook"}, format="json").status_code == 201
