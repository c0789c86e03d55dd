"""One-click unsubscribe (RFC 8058): headers on every non-critical email, the signed link, providers."""

from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import mail, signing
from django.test import override_settings

from channels_delivery.channels.email.channel import EmailMessage
from channels_delivery.channels.email.providers import DjangoEmail, SendGridEmail
from notifications.models import ChannelPreference, Notification
from notifications.planning import planner, unsubscribe

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(make_user):
    return make_user("ada")


def email_message(user, category="orders"):
    notification = Notification.objects.create(recipient=user, category_id=category, title="Hi", routes=[["email"]])
    [delivery] = planner.plan(notification)
    return delivery.message


def link_path(message):
    url = message["headers"]["List-Unsubscribe"].strip("<>")
    assert url.startswith(f"{settings.PUBLIC_BASE_URL}/unsubscribe/")
    return urlsplit(url).path


def test_email_carries_rfc_8058_headers(ada):
    headers = email_message(ada)["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = headers["List-Unsubscribe"].strip("<>").rstrip("/").rsplit("/", 1)[1]
    assert signing.loads(token, salt=unsubscribe.SALT) == {
        "u": ada.pk, "c": "orders", "ch": "email", "a": "ada@example.com"
    }


def test_critical_email_has_no_unsubscribe_link(ada):
    assert not email_message(ada, category="system")["headers"]


def test_get_only_shows_a_form_and_post_switches_the_category_off(client, ada):
    path = link_path(email_message(ada))

    page = client.get(path)

    assert page.status_code == 200
    assert b'<form method="post"' in page.content and b"Orders" in page.content
    assert not ChannelPreference.objects.exists()

    done = client.post(path, {"List-Unsubscribe": "One-Click"})

    assert done.status_code == 200 and b"no longer receive" in done.content
    pref = ChannelPreference.objects.get()
    assert (pref.user, pref.category_id, pref.channel, pref.enabled) == (ada, "orders", "email", False)
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200  # idempotent
    notification = Notification.objects.create(recipient=ada, category_id="orders", title="Hi", routes=[["email"]])
    [delivery] = planner.plan(notification)
    assert (delivery.status, delivery.reason) == ("skipped", "switched off for category orders by user")


def test_tampered_or_foreign_tokens_are_a_400(client, ada):
    path = link_path(email_message(ada))
    token = path.split("/")[2]
    # Signed by us, but for a critical category: we never issue such links.
    forged = signing.dumps({"u": ada.pk, "c": "system", "ch": "email", "a": ada.email}, salt=unsubscribe.SALT)
    wrong_salt = signing.dumps({"u": ada.pk, "c": "orders", "ch": "email"}, salt="something.else")
    payload, timestamp, signature = token.split(":")
    swapped = signing.b64_encode(b'{"u":%d,"c":"system","ch":"email","a":"ada@example.com"}' % ada.pk).decode()
    tampered = [token[:-2] + "xx", f"{swapped}:{timestamp}:{signature}"]
    for bad in (*tampered, forged, wrong_salt, "garbage"):
        assert client.post(f"/unsubscribe/{bad}/").status_code == 400
        assert client.get(f"/unsubscribe/{bad}/").status_code == 400
    assert not ChannelPreference.objects.exists()
    assert client.put(path).status_code == 405


def test_a_link_stops_working_once_it_expires(client, ada, settings):
    path = link_path(email_message(ada))
    settings.NOTIFY_UNSUBSCRIBE_MAX_AGE = 0  # signing compares age > max_age; let a second pass
    import time

    time.sleep(1.1)
    assert client.post(path).status_code == 400
    settings.NOTIFY_UNSUBSCRIBE_MAX_AGE = 3600
    assert client.post(path).status_code == 200
    assert ChannelPreference.objects.filter(user=ada, enabled=False).count() == 1


def test_a_link_sent_to_an_old_address_does_not_unsubscribe_the_new_one(client, ada):
    old_link = link_path(email_message(ada))
    ada.email = "ada@new.example"
    ada.save(update_fields=["email"])
    assert client.post(old_link).status_code == 400
    assert not ChannelPreference.objects.exists()
    assert client.post(link_path(email_message(ada))).status_code == 200


def test_a_link_without_an_address_is_refused(client, ada):
    """Links signed before addresses were named in them (or forged with the old shape) are refused."""
    legacy = signing.dumps({"u": ada.pk, "c": "orders", "ch": "email"}, salt=unsubscribe.SALT)
    assert client.post(f"/unsubscribe/{legacy}/").status_code == 400
    assert not ChannelPreference.objects.exists()


def test_sendgrid_passes_the_headers_on(fake_sendgrid, settings):
    fake_sendgrid.reset()
    settings.SENDGRID_API_KEY, settings.SENDGRID_HOST = fake_sendgrid.api_key, fake_sendgrid.url
    headers = {"List-Unsubscribe": "<https://x.example/u/1/>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    SendGridEmail().send("d-1", EmailMessage(to="ada@example.com", subject="Hi", text="t", headers=headers))
    [request] = fake_sendgrid.requests
    assert request.json()["headers"] == headers


@override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
def test_smtp_passes_the_headers_on():
    headers = {"List-Unsubscribe": "<https://x.example/u/1/>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    DjangoEmail().send("d-1", EmailMessage(to="ada@example.com", subject="Hi", text="t", headers=headers))
    [sent] = mail.outbox
    message = sent.message()
    assert message["List-Unsubscribe"] == "<https://x.example/u/1/>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Notify-Delivery-Id"] == "d-1"
