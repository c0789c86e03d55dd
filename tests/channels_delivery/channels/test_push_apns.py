"""Native push straight through APNs with `aioapns`: HTTP/2 over TLS with an ES256 provider token,
against the fake APNs; Apple's answers sorted; Unregistered
switching the device off; APNs beside FCM in a real worker."""

import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from channels_delivery.channels.push.apns import ApplePush
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from channels_delivery.channels.push.channel import PushMessage
from channels_delivery.channels.push.models import MobileDevice
from notifications.models import Delivery, DeliveryStatus
from tests.support import reset_engine_state, send, wait_until


TOKEN = "ab" * 32


@pytest.fixture
def apns(fakes, channel_settings):
    return fakes["apns"]


def message(devices, **extra):
    return PushMessage(**{"title": "Order shipped", "body": "On its way", "priority": "urgent", "category": "orders",
            "notification_id": str(uuid.uuid4()), "devices": devices, **extra})


def test_push_goes_over_http2_with_a_provider_token(apns):
    result = ApplePush().send(uuid.uuid4(), message([{"id": 1, "token": TOKEN, "provider": "apns"},
                                                     {"id": 2, "token": "fcm-token", "provider": "fcm"}]))

    [(token, headers, payload)] = apns.pushes  # only the APNs device
    assert token == TOKEN
    assert headers["apns-topic"] == apns.topic and headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10" and headers["authorization"].startswith("bearer ")
    assert payload["aps"]["alert"] == {"title": "Order shipped", "body": "On its way"}
    assert payload["category"] == "orders"
    assert result.payload["targets"] == [{"id": 1, "ok": True, "apns_id": headers["apns-id"]}]


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["Unregistered", "BadDeviceToken"])
def test_a_dead_token_is_permanent_and_switched_off(apns, make_user, reason):
    device = MobileDevice.objects.create(user=make_user("ios"), provider="apns", token=TOKEN)
    if reason == "Unregistered":
        apns.unregistered.add(TOKEN)
    else:
        apns.fail_next(400, "BadDeviceToken")
    with pytest.raises(PermanentDeliveryError, match=reason):
        ApplePush().send(uuid.uuid4(), message([{"id": device.id, "token": TOKEN, "provider": "apns"}]))
    device.refresh_from_db()
    assert not device.active and device.deactivated_reason == f"APNs answered {reason}"


@pytest.mark.parametrize("status, reason, error_class", [
    (429, "TooManyRequests", TransientDeliveryError),
    (503, "ServiceUnavailable", TransientDeliveryError),
    (400, "PayloadTooLarge", PermanentDeliveryError),
])
def test_apple_answers_are_sorted(apns, status, reason, error_class):
    apns.fail_next(status, reason)
    with pytest.raises(error_class, match=reason):
        ApplePush().send(uuid.uuid4(), message([{"id": 1, "token": TOKEN, "provider": "apns"}]))


def test_a_key_apple_does_not_know_is_permanent(apns, channel_settings):
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    channel_settings.APNS_AUTH_KEY = other
    with pytest.raises(PermanentDeliveryError, match="403 InvalidProviderToken"):
        ApplePush().send(uuid.uuid4(), message([{"id": 1, "token": TOKEN, "provider": "apns"}]))
    assert apns.pushes == []


def test_apns_down_is_transient(apns, channel_settings):
    channel_settings.APNS_HOST = "127.0.0.1:9"  # nothing listens there
    with pytest.raises(TransientDeliveryError, match="APNs unreachable"):
        ApplePush().send(uuid.uuid4(), message([{"id": 1, "token": TOKEN, "provider": "apns"}]))


@pytest.mark.django_db
def test_apns_tokens_register_through_the_api(user_api, make_user):
    api = user_api(make_user("iphone"))
    created = api.post("/api/me/devices/", {"provider": "apns", "token": TOKEN.upper(), "platform": "ios"},
                       format="json")
    assert created.status_code == 201 and created.json()["token"] == TOKEN
    bad = api.post("/api/me/devices/", {"provider": "apns", "token": "xyz"}, format="json")
    assert bad.status_code == 400 and "token" in bad.json()["error"]["fields"]
    unknown = api.post("/api/me/devices/", {"provider": "pager", "token": TOKEN}, format="json")
    assert unknown.status_code == 400 and "provider" in unknown.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_fcm_and_apns_devices_side_by_side_in_a_worker(celery_worker, fakes, app_api, make_user):
    reset_engine_state()
    user = make_user("twoos")
    MobileDevice.objects.create(user=user, provider="fcm", token="fcm-token-" + "d" * 100, platform="android")
    MobileDevice.objects.create(user=user, provider="apns", token=TOKEN, platform="ios")

    [notification_id] = send(app_api, recipients=["twoos"], channels=["push"])

    delivery = wait_until(lambda: Delivery.objects.filter(notification_id=notification_id,
                                                          status=DeliveryStatus.SENT).first(), timeout=30)
    assert delivery.provider == "fcm+apns"
    assert len(fakes["fcm"].messages()) == 1 and [t for t, _, _ in fakes["apns"].pushes] == [TOKEN]
    reset_engine_state()
