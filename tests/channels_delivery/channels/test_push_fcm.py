"""Native mobile push through FCM HTTP v1: google-auth's OAuth2 service-account flow and the
requests it authorizes, against the fake FCM (token endpoint and messages:send); error sorting;
UNREGISTERED switching the device off; Web Push and FCM side by side in a real worker."""

import uuid

import pytest

from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from channels_delivery.channels.push.fcm import FirebaseMessaging
from channels_delivery.channels.push.channel import PushMessage
from channels_delivery.channels.push.models import MobileDevice
from notifications.models import Delivery, DeliveryStatus, PushSubscription
from tests.support import reset_engine_state, send, wait_until
from tests.support.fakes.fcm import fcm_error


TOKEN = "fcm-token-" + "a" * 140


@pytest.fixture
def fcm(fakes, channel_settings):
    return fakes["fcm"]


def message(**extra):
    return PushMessage(**{"title": "Order shipped", "body": "On its way", "priority": "high", "category": "orders",
            "notification_id": str(uuid.uuid4()), "data": {"order": 123},
            "devices": [{"id": 1, "token": TOKEN}], **extra})


def test_service_account_token_then_message_as_fcm_v1(fcm):
    provider = FirebaseMessaging()
    result = provider.send(uuid.uuid4(), message())
    provider.send(uuid.uuid4(), message())

    assert fcm.token_requests == 1  # google-auth keeps the access token for its hour
    sent = fcm.messages()
    assert len(sent) == 2
    assert sent[0]["token"] == TOKEN
    assert sent[0]["notification"] == {"title": "Order shipped", "body": "On its way"}
    assert sent[0]["data"]["data"] == '{"order":123}' and sent[0]["data"]["category"] == "orders"
    assert sent[0]["android"]["priority"] == "high" and sent[0]["apns"]["headers"]["apns-priority"] == "10"
    [target] = result.payload["targets"]
    assert target["ok"] and target["name"].startswith(f"projects/{fcm.project_id}/messages/")
    send_request = [r for r in fcm.requests if r.path.endswith("messages:send")][0]
    assert send_request.headers["authorization"].startswith("Bearer ya29.")


def test_a_key_the_token_endpoint_refuses_is_permanent(fcm, channel_settings):
    info = fcm.service_account_info()
    info["client_email"] = "someone-else@example.iam.gserviceaccount.com"
    import json

    channel_settings.FCM_CREDENTIALS_JSON = json.dumps(info)
    with pytest.raises(PermanentDeliveryError, match="OAuth2 token refused"):
        FirebaseMessaging().send(uuid.uuid4(), message())
    assert fcm.messages() == []


def test_unregistered_token_is_permanent_and_reported_gone(fcm, db, make_user):
    device = MobileDevice.objects.create(user=make_user("phone"), token=TOKEN)
    fcm.unregistered.add(TOKEN)
    with pytest.raises(PermanentDeliveryError, match="404 UNREGISTERED"):
        FirebaseMessaging().send(uuid.uuid4(), message(devices=[{"id": device.id, "token": TOKEN}]))
    device.refresh_from_db()
    assert not device.active and device.deactivated_reason == "FCM answered UNREGISTERED"


@pytest.mark.parametrize("status, code, error_class", [
    (429, "QUOTA_EXCEEDED", TransientDeliveryError),
    (503, "UNAVAILABLE", TransientDeliveryError),
    (400, "INVALID_ARGUMENT", PermanentDeliveryError),
    (403, "SENDER_ID_MISMATCH", PermanentDeliveryError),
])
def test_fcm_errors_are_sorted(fcm, status, code, error_class):

    provider = FirebaseMessaging()
    provider.send(uuid.uuid4(), message())  # holds its access token now: the fault hits messages:send
    answer_status, headers, body = fcm_error(status, "no", code, headers={"Retry-After": "7"})
    fcm.fail_next(status=answer_status, headers=headers, body=body)
    with pytest.raises(error_class, match=code) as caught:
        provider.send(uuid.uuid4(), message())
    if error_class is TransientDeliveryError:
        assert caught.value.retry_after == 7.0


def test_one_gone_device_of_two_still_sends(fcm, db, make_user):
    user = make_user("twophones")
    gone = MobileDevice.objects.create(user=user, token="gone-" + "b" * 100)
    fcm.unregistered.add(gone.token)
    result = FirebaseMessaging().send(uuid.uuid4(), message(devices=[{"id": gone.id, "token": gone.token},
                                                                   {"id": 99, "token": TOKEN}]))
    assert [t["ok"] for t in result.payload["targets"]] == [False, True]
    gone.refresh_from_db()
    assert not gone.active


# --- API -------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_devices_register_as_an_upsert_and_bad_tokens_are_400(user_api, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    first = user_api(alice).post("/api/me/devices/", {"token": TOKEN, "platform": "android"}, format="json")
    assert first.status_code == 201
    again = user_api(bob).post("/api/me/devices/", {"token": TOKEN, "platform": "ios"}, format="json")
    assert again.status_code == 200 and MobileDevice.objects.get().user == bob  # the phone changed hands
    bad = user_api(bob).post("/api/me/devices/", {"token": "short"}, format="json")
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"token"}
    odd = user_api(bob).post("/api/me/devices/", {"token": TOKEN, "platform": "nokia"}, format="json")
    assert odd.status_code == 400 and set(odd.json()["error"]["fields"]) == {"platform"}
    assert user_api(alice).get("/api/me/devices/").json()["results"] == []


# --- side by side in a real worker -------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_browser_and_phones_together_and_unregistered_switched_off(celery_worker, fakes, app_api, make_user):
    reset_engine_state()
    fcm, webpush = fakes["fcm"], fakes["push"]
    user = make_user("mobile1")
    info = webpush.subscribe()
    PushSubscription.objects.create(user=user, endpoint=info["endpoint"], **info["keys"])
    phone = MobileDevice.objects.create(user=user, token=TOKEN, platform="android")
    old_phone = MobileDevice.objects.create(user=user, token="old-" + "c" * 100, platform="ios")
    fcm.unregistered.add(old_phone.token)

    [notification_id] = send(app_api, recipients=["mobile1"], channels=["push"])

    delivery = wait_until(lambda: Delivery.objects.filter(notification_id=notification_id,
                                                          status=DeliveryStatus.SENT).first(), timeout=30)
    assert delivery.provider == "webpush+fcm"
    assert [t["ok"] for t in delivery.provider_payload["fcm"]["targets"]] == [True, False]
    assert {a.provider for a in delivery.attempts.all()} == {"webpush", "fcm"}
    assert [m["token"] for m in fcm.messages()] == [phone.token]
    assert len(webpush.requests) == 1
    old_phone.refresh_from_db()
    assert not old_phone.active and "UNREGISTERED" in old_phone.deactivated_reason

    # the next notification is not planned for the switched-off phone at all
    [second] = send(app_api, recipients=["mobile1"], channels=["push"])
    second_delivery = wait_until(lambda: Delivery.objects.filter(notification_id=second,
                                                                 status=DeliveryStatus.SENT).first(), timeout=30)
    assert [d["id"] for d in second_delivery.message["devices"]] == [phone.id]
    reset_engine_state()
