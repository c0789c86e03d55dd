"""Web Push through the real pywebpush against a push service that decrypts and checks VAPID."""

import json
import uuid

import pytest

from channels_delivery.channels.push.channel import PushMessage
from channels_delivery.channels.push.providers import WebPush
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.models import PushSubscription
from notifications.planning.planner import address_for
from tests.support.fakes.webpush import new_vapid_keys

pytestmark = pytest.mark.django_db


@pytest.fixture
def push(fakes, channel_settings):
    return fakes["push"]


@pytest.fixture
def subscribe(push, make_user):
    user = make_user("ada")

    def make():
        info = push.subscribe()
        PushSubscription.objects.create(user=user, endpoint=info["endpoint"], **info["keys"])
        return info

    make.user = user
    return make


MESSAGE = {"title": "Order 123 shipped", "body": "It is on its way.", "url": "https://shop.example.com/orders/123",
           "data": {"order": 123}, "priority": "urgent", "notification_id": "n-1", "category": "orders"}


def send(user):
    return WebPush().send(uuid.uuid4(), PushMessage.from_dict({**MESSAGE, **address_for(user, "push")}))


def test_each_subscription_gets_the_payload_encrypted_for_it(push, subscribe):
    first, second = subscribe(), subscribe()

    result = send(subscribe.user)

    assert {token for token, _, _ in push.pushes} == {first["endpoint"].rsplit("/", 1)[1], second["endpoint"].rsplit("/", 1)[1]}
    for _, payload, headers in push.pushes:
        assert payload == {"title": "Order 123 shipped", "body": "It is on its way.",
                           "url": "https://shop.example.com/orders/123", "data": {"order": 123},
                           "notification_id": "n-1", "category": "orders"}
        assert headers["urgency"] == "high" and headers["ttl"] == "86400"
    assert [target["ok"] for target in result.payload["targets"]] == [True, True]


def test_410_deactivates_the_subscription_and_fails_for_good(push, subscribe):
    info = subscribe()
    push.expire(info["endpoint"])

    with pytest.raises(PermanentDeliveryError, match="410"):
        send(subscribe.user)

    subscription = PushSubscription.objects.get(endpoint=info["endpoint"])
    assert subscription.active is False and subscription.deactivated_reason == "push service answered 410"
    assert address_for(subscribe.user, "push") is None


def test_one_dead_subscription_does_not_fail_the_delivery(push, subscribe):
    dead, alive = subscribe(), subscribe()
    push.expire(dead["endpoint"])

    result = send(subscribe.user)

    assert [target["ok"] for target in result.payload["targets"]] == [False, True]
    assert len(push.pushes) == 1
    assert list(PushSubscription.objects.filter(active=True).values_list("endpoint", flat=True)) == [alive["endpoint"]]


def test_unknown_subscription_404_is_deactivated(push, subscribe):
    subscribe()
    PushSubscription.objects.update(endpoint=push.url + "/push/never-existed")

    with pytest.raises(PermanentDeliveryError, match="404"):
        send(subscribe.user)
    assert PushSubscription.objects.get().active is False


def test_429_is_transient_with_retry_after_and_keeps_the_subscription(push, subscribe):
    subscribe()
    push.fail_next(status=429, headers={"Retry-After": "30"})

    with pytest.raises(TransientDeliveryError) as caught:
        send(subscribe.user)
    assert caught.value.retry_after == 30.0 and caught.value.status_code == 429
    assert PushSubscription.objects.get().active is True


@pytest.mark.parametrize("fault", [{"status": 502}, {"timeout": True}, {"drop": True}])
def test_outages_are_transient(push, subscribe, fault):
    subscribe()
    push.fail_next(**fault)
    with pytest.raises(TransientDeliveryError):
        send(subscribe.user)
    assert PushSubscription.objects.get().active is True


def test_a_transient_failure_and_a_dead_subscription_retry_the_delivery(push, subscribe):
    dead, _flaky = subscribe(), subscribe()
    push.expire(dead["endpoint"])
    push.fail_next(count=2, status=503)

    with pytest.raises(TransientDeliveryError, match="2 of 2 failed"):
        send(subscribe.user)


def test_wrong_vapid_key_is_permanent_and_keeps_the_subscription(push, subscribe, channel_settings):
    subscribe()
    channel_settings.VAPID_PRIVATE_KEY = new_vapid_keys()[0]

    with pytest.raises(PermanentDeliveryError, match="403"):
        send(subscribe.user)
    assert PushSubscription.objects.get().active is True


def test_loopback_push_endpoint_is_refused_without_the_allow_list(push, subscribe, channel_settings):
    subscribe()
    channel_settings.WEBHOOK_ALLOWED_HOSTS = []

    with pytest.raises(PermanentDeliveryError, match="non-public address"):
        send(subscribe.user)
    assert push.received == []


def test_oversized_content_is_trimmed_to_what_push_services_accept(push, subscribe):
    subscribe()
    big = {**MESSAGE, "body": "é" * 3000, "data": {"blob": "x" * 5000}, **address_for(subscribe.user, "push")}

    WebPush().send(uuid.uuid4(), PushMessage.from_dict(big))

    [(_, payload, _)] = push.pushes
    assert payload["truncated"] is True and payload["data"] == {}
    assert payload["title"] == "Order 123 shipped" and payload["body"].endswith("…")
    assert len(json.dumps(payload, ensure_ascii=False).encode()) <= 3800


def test_unusable_vapid_key_is_a_permanent_configuration_error(push, subscribe, channel_settings):
    subscribe()
    channel_settings.VAPID_PRIVATE_KEY = "not-a-key"
    with pytest.raises(PermanentDeliveryError, match="VAPID_PRIVATE_KEY"):
        send(subscribe.user)
    assert push.received == []
