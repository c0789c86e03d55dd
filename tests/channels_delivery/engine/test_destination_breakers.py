"""Circuits for user-chosen destinations (webhooks, push) are kept per destination host: one
user's endpoint answering 503 opens its own circuit, not the channel's, and another user's
endpoint keeps getting its messages."""

import pytest

from channels_delivery.engine import delivery
from channels_delivery.engine.circuit import breaker, destination_breaker
from channels_delivery.engine.errors import TransientDeliveryError
from notifications.planning import planner
from notifications.models import Delivery, DeliveryStatus, Notification, WebhookEndpoint

from tests.support import reset_engine_state
from tests.support.fakes.hostile import HostileReceiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_circuits(settings):
    settings.NOTIFY_CIRCUIT_FAILURES, settings.NOTIFY_CIRCUIT_OPEN_SECONDS = 3, 30
    reset_engine_state()
    yield
    reset_engine_state()


@pytest.fixture
def bad_host():
    receiver = HostileReceiver().start()
    receiver.status = 503
    yield receiver
    receiver.stop()


def webhook_delivery(user):
    notification = Notification.objects.create(recipient=user, category_id="orders", title="Hi", routes=[["webhook"]])
    [row] = planner.plan(notification)
    row.save()
    return row


def test_one_failing_endpoint_opens_only_its_own_circuit(bad_host, fakes, channel_settings, make_user):
    good_receiver = fakes["webhook"]
    mallory, ada = make_user("mallory"), make_user("ada")
    bad = WebhookEndpoint.objects.create(user=mallory, url=f"{bad_host.url}/hook")
    good = WebhookEndpoint.objects.create(user=ada, url="http://placeholder/")
    good.url = good_receiver.endpoint(good.secret)
    good.save()

    for _ in range(3):  # the endpoint fails as many times as it takes to trip a circuit
        row = webhook_delivery(mallory)
        with pytest.raises(TransientDeliveryError, match="503"):
            delivery.attempt(row.id)
    assert len(bad_host.requests) == 3
    assert destination_breaker("webhook", bad.url).state() == "open"
    assert breaker("webhook").state() == "closed"

    row = webhook_delivery(ada)
    result = delivery.attempt(row.id)
    assert result is not None and Delivery.objects.get(id=row.id).status == DeliveryStatus.SENT
    assert len(good_receiver.events) == 1

    row = webhook_delivery(mallory)
    with pytest.raises(TransientDeliveryError, match=r"circuit open for 127\.0\.0\.1, not called"):
        delivery.attempt(row.id)
    assert len(bad_host.requests) == 3  # not called while its circuit is open
    assert Delivery.objects.get(id=row.id).status == DeliveryStatus.RETRYING  # retried, not failed over


def test_push_circuits_are_per_push_service_host(bad_host, fakes, channel_settings, make_user):
    from notifications.models import PushSubscription

    mallory, ada = make_user("mallory"), make_user("ada")
    keys = fakes["push"].subscribe()["keys"]
    PushSubscription.objects.create(user=mallory, endpoint=f"{bad_host.url}/push/x", **keys)
    info = fakes["push"].subscribe()
    PushSubscription.objects.create(user=ada, endpoint=info["endpoint"], **info["keys"])

    def push_delivery(user):
        notification = Notification.objects.create(recipient=user, category_id="orders", title="Hi", routes=[["push"]])
        [row] = planner.plan(notification)
        row.save()
        return row

    for _ in range(4):
        with pytest.raises(TransientDeliveryError):
            delivery.attempt(push_delivery(mallory).id)
    assert len(bad_host.requests) == 3
    assert breaker("webpush").state() == "closed"
    delivery.attempt(push_delivery(ada).id)
    assert len(fakes["push"].pushes) == 1
