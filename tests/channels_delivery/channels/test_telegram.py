"""Telegram through the Bot API (sendMessage) against the fake Bot API server: the contact-point
API, error sorting, a blocked chat switched off, and end to end through a real worker."""

import uuid

import pytest

from channels_delivery.channels.telegram.channel import TelegramMessage
from channels_delivery.channels.telegram.models import TelegramChat
from channels_delivery.channels.telegram.providers import TelegramBot
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.models import Delivery, DeliveryStatus, Notification, NotificationStatus
from notifications.planning.planner import address_for
from tests.support import wait_until

URL = "/api/me/telegram-chats/"


@pytest.fixture
def telegram(fakes, channel_settings):
    channel_settings.TELEGRAM_BOT_TOKEN = fakes["telegram"].token
    channel_settings.TELEGRAM_API_BASE = fakes["telegram"].url
    return fakes["telegram"]


def chat_of(user, telegram, chat_id=111):
    telegram.open_chat(chat_id)
    return TelegramChat.objects.create(user=user, chat_id=chat_id)


def send(user, text="Order 123 shipped"):
    return TelegramBot().send(uuid.uuid4(), TelegramMessage.from_dict({"text": text, **address_for(user, "telegram")}))


@pytest.mark.django_db
def test_message_reaches_the_chat(telegram, make_user):
    ada = make_user("ada")
    chat_of(ada, telegram)
    result = send(ada)
    [request] = telegram.requests
    assert request.path == f"/bot{telegram.token}/sendMessage"
    assert request.json() == {"chat_id": 111, "text": "Order 123 shipped", "disable_web_page_preview": True}
    assert result.payload["targets"][0]["ok"] and result.payload["targets"][0]["message_id"] == 1
    # The token is in the URL only, never in what we keep.
    assert telegram.token not in str(result.payload)


@pytest.mark.django_db
def test_429_is_transient_with_telegrams_retry_after(telegram, make_user):
    ada = make_user("ada")
    chat_of(ada, telegram)
    telegram.flood(7)
    with pytest.raises(TransientDeliveryError) as raised:
        send(ada)
    assert raised.value.status_code == 429 and raised.value.retry_after == 7.0


@pytest.mark.django_db
def test_a_chat_that_blocked_the_bot_is_permanent_and_switched_off(telegram, make_user):
    ada = make_user("ada")
    chat = chat_of(ada, telegram)
    telegram.blocked.add(111)
    with pytest.raises(PermanentDeliveryError, match="bot was blocked by the user"):
        send(ada)
    chat.refresh_from_db()
    assert not chat.active and "blocked" in chat.deactivated_reason
    assert address_for(ada, "telegram") is None  # never planned again


@pytest.mark.django_db
def test_5xx_and_timeouts_are_transient_and_a_wrong_token_is_permanent(telegram, make_user, channel_settings):
    ada = make_user("ada")
    chat_of(ada, telegram)
    telegram.fail_next(status=502, body=b"Bad Gateway")
    with pytest.raises(TransientDeliveryError):
        send(ada)
    telegram.fail_next(timeout=True)
    with pytest.raises(TransientDeliveryError, match="timed out"):
        send(ada)
    channel_settings.TELEGRAM_BOT_TOKEN = "123:wrong"
    with pytest.raises(PermanentDeliveryError, match="telegram 401") as raised:
        send(ada)
    assert "123:wrong" not in str(raised.value)


@pytest.mark.django_db
def test_contact_point_api_upserts_lists_and_refuses_bad_input(make_user, user_api):
    api = user_api(make_user("ada"))
    first = api.post(URL, {"chat_id": 111, "label": "phone"}, format="json")
    again = api.post(URL, {"chat_id": 111, "label": "my phone"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert [chat["label"] for chat in api.get(URL).json()["results"]] == ["my phone"]
    bad = api.post(URL, {"chat_id": "not a number"}, format="json")
    assert bad.status_code == 400 and "chat_id" in bad.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_end_to_end_through_a_real_worker(celery_worker, fakes, app_api, make_user):
    telegram = fakes["telegram"]
    ada = make_user("tg-ada")
    telegram.open_chat(222)
    TelegramChat.objects.create(user=ada, chat_id=222)

    response = app_api.post("/api/notifications/", {
        "recipients": ["tg-ada"], "category": "orders", "title": "Order 123 shipped",
        "message": "It is on its way.", "channels": ["telegram"],
    }, format="json")
    assert response.status_code == 202, response.content
    [notification_id] = response.json()["ids"]

    telegram.wait_for(1)
    assert telegram.texts(222) == ["Order 123 shipped\n\nIt is on its way."]
    delivery = wait_until(
        lambda: Delivery.objects.filter(notification_id=notification_id, status=DeliveryStatus.SENT).first(),
        timeout=30, message="telegram delivery sent",
    )
    assert delivery.provider == "telegram" and delivery.attempts.get().outcome == "sent"
    assert Notification.objects.get(id=notification_id).status == NotificationStatus.SENT


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_blocked_chat_falls_back_to_the_next_channel(celery_worker, fakes, app_api, make_user):
    telegram = fakes["telegram"]
    ada = make_user("tg-blocked")
    TelegramChat.objects.create(user=ada, chat_id=333)
    telegram.blocked.add(333)

    response = app_api.post("/api/notifications/", {
        "recipients": ["tg-blocked"], "category": "orders", "title": "Hi", "channels": [["telegram", "inapp"]],
    }, format="json")
    [notification_id] = response.json()["ids"]

    wait_until(lambda: Delivery.objects.filter(notification_id=notification_id, channel="inapp",
                                               status=DeliveryStatus.DELIVERED).exists(),
               timeout=30, message="in-app fallback delivered")
    failed = Delivery.objects.get(notification_id=notification_id, channel="telegram")
    assert failed.status == DeliveryStatus.FAILED and "blocked" in failed.reason
    assert not TelegramChat.objects.get(chat_id=333).active
