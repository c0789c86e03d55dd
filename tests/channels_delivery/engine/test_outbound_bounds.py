"""User-supplied URLs (push endpoints, webhooks) cannot make a worker hold an endless or inflated
answer, nor keep it past a total deadline: the answer is asked for uncompressed, never inflated,
read up to a cap, and the whole call is cut at OUTBOUND_DEADLINE_SECONDS."""

import time
import tracemalloc
import uuid

import pytest

from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from channels_delivery.channels.push.channel import PushMessage
from channels_delivery.channels.push.providers import WebPush
from channels_delivery.channels.webhook.channel import WebhookMessage
from channels_delivery.channels.webhook.providers import SignedWebhook
from notifications.planning.planner import address_for
from notifications.models import PushSubscription, WebhookEndpoint

from tests.support.fakes.hostile import HostileReceiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def hostile():
    receiver = HostileReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def bounded(channel_settings):
    channel_settings.OUTBOUND_DEADLINE_SECONDS = 1.5
    channel_settings.OUTBOUND_RESPONSE_MAX_BYTES = 64 * 1024
    channel_settings.PROVIDER_TIMEOUT_SECONDS = 1.0
    return channel_settings


@pytest.fixture
def push_user(make_user, fakes, hostile):
    """A user whose push subscription points at the hostile host (keys from a real browser-like fake)."""
    user = make_user("mallory")
    keys = fakes["push"].subscribe()["keys"]
    PushSubscription.objects.create(user=user, endpoint=f"{hostile.url}/push/abc", **keys)
    return user


def push(user):
    message = {"title": "Hi", "body": "b", "priority": "urgent", "notification_id": "n", "category": "orders"}
    return WebPush().send(uuid.uuid4(), PushMessage.from_dict({**message, **address_for(user, "push")}))


def test_a_201_gzip_bomb_from_a_push_endpoint_is_never_inflated(hostile, bounded, push_user):
    hostile.mode, hostile.status, hostile.inflated_mb = "gzip_bomb", 201, 200  # ~200 KB that inflate to 200 MiB
    hostile.bomb()
    tracemalloc.start()
    try:
        result = push(push_user)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [target["ok"] for target in result.payload["targets"]] == [True]
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while answering"
    [(request_line, headers)] = hostile.requests
    assert request_line.startswith("POST /push/abc") and headers["accept-encoding"] == "identity"
    assert headers["content-encoding"] == "aes128gcm" and headers["authorization"].startswith("vapid t=")


def test_a_gzip_bomb_error_answer_is_cut_and_not_inflated(hostile, bounded, push_user):
    hostile.mode, hostile.status, hostile.inflated_mb = "gzip_bomb", 400, 200
    hostile.bomb()
    tracemalloc.start()
    try:
        with pytest.raises(PermanentDeliveryError, match="webpush 400") as failed:
            push(push_user)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024 and len(str(failed.value)) < 500


@pytest.mark.parametrize("mode", ["drip_headers", "drip_body"])
def test_a_drip_fed_push_answer_is_cut_at_the_total_deadline(hostile, bounded, push_user, mode):
    hostile.mode = mode  # a byte every 0.2 s: no single read ever times out
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="timed out"):
        push(push_user)
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 3.0, elapsed


@pytest.mark.parametrize("mode", ["drip_headers", "drip_body"])
def test_a_drip_fed_webhook_answer_is_cut_at_the_same_deadline(hostile, bounded, make_user, mode):
    hostile.mode = mode
    endpoint = WebhookEndpoint.objects.create(user=make_user("mallory"), url=f"{hostile.url}/hook")
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="timed out"):
        SignedWebhook().send(uuid.uuid4(), WebhookMessage.from_dict({"event": {"type": "t"}, "endpoint_ids": [endpoint.id]}))
    assert 1.4 < time.monotonic() - started < 3.0
    assert hostile.requests[0][1]["accept-encoding"] == "identity"


def test_a_webhook_gzip_bomb_is_read_raw_and_capped(hostile, bounded, make_user):
    hostile.mode, hostile.status, hostile.inflated_mb = "gzip_bomb", 500, 200
    hostile.bomb()
    endpoint = WebhookEndpoint.objects.create(user=make_user("mallory"), url=f"{hostile.url}/hook")
    tracemalloc.start()
    try:
        with pytest.raises(TransientDeliveryError, match="500"):
            SignedWebhook().send(uuid.uuid4(), WebhookMessage.from_dict({"event": {"type": "t"}, "endpoint_ids": [endpoint.id]}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_push_redirects_are_not_followed(hostile, bounded, push_user):
    hostile.status = 307
    with pytest.raises(PermanentDeliveryError, match="307: redirects are not followed"):
        push(push_user)
    assert len(hostile.requests) == 1
