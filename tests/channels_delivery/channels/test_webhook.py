"""Webhooks signed per Standard Webhooks, verified by a receiver with `standardwebhooks`; the
SSRF guard; error sorting against the receiver's fault injection."""

import socket
import uuid

import pytest

from channels_delivery.channels.webhook.channel import WebhookMessage
from channels_delivery.channels.webhook.providers import SignedWebhook
from channels_delivery.engine import netguard
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.models import WebhookEndpoint, new_webhook_secret
from notifications.planning.planner import address_for

pytestmark = pytest.mark.django_db

EVENT = {
    "type": "notification.created",
    "timestamp": "2026-11-22T01:00:00+00:00",
    "data": {"id": "n-1", "title": "Order 123 shipped"},
}


@pytest.fixture
def receiver(fakes, channel_settings):
    return fakes["webhook"]


@pytest.fixture
def user(make_user):
    return make_user("ada")


def add_endpoint(receiver, user, host=None):
    endpoint = WebhookEndpoint.objects.create(user=user, url="http://placeholder.invalid/")
    endpoint.url = receiver.endpoint(endpoint.secret, host=host)
    endpoint.save()
    return endpoint


def send(user, delivery_id=None):
    delivery_id = delivery_id or uuid.uuid4()
    return delivery_id, SignedWebhook().send(
        delivery_id, WebhookMessage.from_dict({"event": EVENT, **address_for(user, "webhook")})
    )


def test_signed_event_verifies_at_the_receiver(receiver, user):
    endpoint = add_endpoint(receiver, user)

    delivery_id, result = send(user)

    [(path, payload, headers)] = receiver.events
    assert endpoint.url.endswith(path)
    assert payload == EVENT
    assert headers["webhook-id"] == str(delivery_id) and headers["idempotency-key"] == str(delivery_id)
    assert headers["webhook-signature"].startswith("v1,")
    assert result.payload["targets"] == [{"id": endpoint.id, "ok": True, "status": 204}]


def test_message_names_endpoints_but_holds_no_secret_or_url(receiver, user):
    endpoint = add_endpoint(receiver, user)
    address = address_for(user, "webhook")
    assert address == {"endpoint_ids": [endpoint.id]}
    assert endpoint.secret not in str(address)


def test_rotated_secret_is_used_on_the_next_try(receiver, user):
    endpoint = add_endpoint(receiver, user)
    message = {"event": EVENT, **address_for(user, "webhook")}
    endpoint.secret = new_webhook_secret()
    endpoint.save()
    receiver.secrets[endpoint.url.removeprefix(receiver.url)] = endpoint.secret

    SignedWebhook().send(uuid.uuid4(), WebhookMessage.from_dict(message))
    assert len(receiver.events) == 1


def test_generated_secrets_work_with_standard_webhooks():
    from standardwebhooks.webhooks import Webhook

    for _ in range(50):
        Webhook(new_webhook_secret())


def test_deactivated_endpoint_is_not_called(receiver, user):
    endpoint = add_endpoint(receiver, user)
    message = {"event": EVENT, **address_for(user, "webhook")}
    WebhookEndpoint.objects.filter(id=endpoint.id).update(active=False)

    with pytest.raises(PermanentDeliveryError, match="no active contact point"):
        SignedWebhook().send(uuid.uuid4(), WebhookMessage.from_dict(message))
    assert receiver.received == []


def test_signature_the_receiver_rejects_is_permanent(receiver, user):
    endpoint = add_endpoint(receiver, user)
    receiver.secrets[endpoint.url.removeprefix(receiver.url)] = new_webhook_secret()
    with pytest.raises(PermanentDeliveryError, match="401") as caught:
        send(user)
    assert caught.value.status_code == 401
    assert endpoint.url not in str(caught.value)  # a URL can hold a token: errors name the host only


def test_429_with_ratelimit_reset_is_transient(receiver, user):
    add_endpoint(receiver, user)
    receiver.fail_next(status=429, headers={"X-RateLimit-Reset": "12"})
    with pytest.raises(TransientDeliveryError) as caught:
        send(user)
    assert caught.value.retry_after == 12.0


@pytest.mark.parametrize(
    "fault, text",
    [
        ({"status": 502}, "502"),
        ({"status": 504}, "504"),
        ({"status": 408}, "408"),
        ({"timeout": True}, "timed out"),
        ({"drop": True}, "unreachable"),
    ],
)
def test_outages_are_transient(receiver, user, fault, text):
    add_endpoint(receiver, user)
    receiver.fail_next(**fault)
    with pytest.raises(TransientDeliveryError, match=text):
        send(user)


def test_slow_answer_within_the_read_timeout_is_fine(receiver, user, channel_settings):
    add_endpoint(receiver, user)
    receiver.fail_next(status=0, delay=0.3)
    send(user)
    assert len(receiver.events) == 1


def test_410_gone_switches_the_endpoint_off(receiver, user):
    endpoint = add_endpoint(receiver, user)
    receiver.fail_next(status=410)

    with pytest.raises(PermanentDeliveryError, match="410: endpoint gone") as caught:
        send(user)

    assert caught.value.status_code == 410
    endpoint.refresh_from_db()
    assert endpoint.active is False and endpoint.deactivated_reason == "endpoint answered 410 Gone"
    assert address_for(user, "webhook") is None


@pytest.mark.parametrize("status", [404, 422])
def test_other_4xx_fail_for_good_but_keep_the_endpoint(receiver, user, status):
    endpoint = add_endpoint(receiver, user)
    receiver.fail_next(status=status)
    with pytest.raises(PermanentDeliveryError, match=str(status)):
        send(user)
    endpoint.refresh_from_db()
    assert endpoint.active is True


def test_503_retry_after_is_honoured(receiver, user):
    add_endpoint(receiver, user)
    receiver.fail_next(status=503, headers={"Retry-After": "120"})
    with pytest.raises(TransientDeliveryError) as caught:
        send(user)
    assert caught.value.retry_after == 120.0


def test_redirects_are_not_followed(receiver, user):
    add_endpoint(receiver, user)
    receiver.fail_next(status=302, headers={"Location": "http://127.0.0.2/internal"})
    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        send(user)
    assert len(receiver.received) == 1


def test_every_endpoint_must_accept_or_the_delivery_retries(receiver, user):
    add_endpoint(receiver, user)
    add_endpoint(receiver, user)
    receiver.fail_next(status=500)
    delivery_id = uuid.uuid4()
    with pytest.raises(TransientDeliveryError, match="1 of 2 failed"):
        send(user, delivery_id)
    # Without a Delivery row to remember who accepted, the retry sends both again under the same
    # webhook-id, so the receiver that had it can de-duplicate (with a row: the test below).
    send(user, delivery_id)
    ids = [headers["webhook-id"] for _, _, headers in receiver.events]
    assert ids == [str(delivery_id)] * 3


def test_a_retry_posts_only_to_the_endpoints_that_have_not_accepted(receiver, user):
    """One failing endpoint must not turn each retry into a POST to every endpoint (a reflector)."""
    from notifications.models import Delivery, Notification

    good = [add_endpoint(receiver, user) for _ in range(4)]
    with socket.socket() as closed:  # an endpoint nobody answers: each try fails transiently
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    WebhookEndpoint.objects.create(user=user, url=f"http://127.0.0.1:{dead_port}/hook")
    delivery = Delivery.objects.create(
        notification=Notification.objects.create(recipient=user, category_id="orders", title="x"), channel="webhook"
    )
    for _ in range(3):
        with pytest.raises(TransientDeliveryError):
            send(user, delivery.id)
    paths = [request.path for request in receiver.received]
    assert sorted(paths) == sorted("/" + endpoint.url.split("/", 3)[3] for endpoint in good)
    delivery.refresh_from_db()
    assert delivery.provider_payload == {"accepted_endpoint_ids": sorted(e.id for e in good)}


# --- the SSRF guard ------------------------------------------------------------------------


def test_loopback_is_refused_without_the_allow_list(receiver, user, channel_settings):
    add_endpoint(receiver, user)
    channel_settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(PermanentDeliveryError, match="127.0.0.1, a non-public address"):
        send(user)
    assert receiver.received == []


def test_localhost_name_is_refused_too(receiver, user, channel_settings):
    add_endpoint(receiver, user, host="localhost")
    channel_settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(PermanentDeliveryError, match="non-public address"):
        send(user)
    assert receiver.received == []


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.10",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "fd00:ec2::254",
    ],
)
def test_private_loopback_and_link_local_addresses_are_blocked(settings, address):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(netguard.BlockedAddressError):
        netguard.check_address("hooks.customer.test", address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_pass(settings, address):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    netguard.check_address("hooks.customer.test", address)


def test_allow_list_opens_networks_and_host_names(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["10.0.0.0/8", "intranet.local"]
    netguard.check_address("anything", "10.20.30.40")
    netguard.check_address("intranet.local", "192.168.0.7")
    with pytest.raises(netguard.BlockedAddressError):
        netguard.check_address("anything", "192.168.0.7")


@pytest.fixture
def fake_dns(monkeypatch):
    """Answers for made-up names, in order, one answer list per lookup."""
    answers, lookups = {}, []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        addresses = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    monkeypatch.setattr(netguard.socket, "getaddrinfo", getaddrinfo)
    return answers, lookups


def test_any_blocked_address_among_the_answers_refuses_the_host(receiver, user, channel_settings, fake_dns):
    answers, _ = fake_dns
    answers["hooks.customer.test"] = [["127.0.0.1", "10.9.9.9"]]
    add_endpoint(receiver, user, host="hooks.customer.test")
    with pytest.raises(PermanentDeliveryError, match="10.9.9.9"):
        send(user)
    assert receiver.received == []


def test_connection_goes_to_the_address_that_was_checked(receiver, user, channel_settings, fake_dns):
    """DNS rebinding: the name answers an allowed address first and a refused one next (another
    loopback address, so even a broken guard sends nothing off this machine). The first connection
    uses its one checked answer; the next connection checks again and refuses."""
    answers, lookups = fake_dns
    answers["rebind.customer.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    add_endpoint(receiver, user, host="rebind.customer.test")

    send(user)
    assert lookups == ["rebind.customer.test"]
    assert receiver.received[0].headers["host"].startswith("rebind.customer.test:")

    channel_settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "192.0.2.1"]  # a fresh pool, so a new connection
    with pytest.raises(PermanentDeliveryError, match="127.0.0.2, a non-public address"):
        send(user)
    assert len(receiver.received) == 1


def test_one_keep_alive_session_per_process(channel_settings):
    assert netguard.guarded_session() is netguard.guarded_session()
    assert netguard.guarded_session().trust_env is False


def test_an_endless_error_body_is_cut_short(receiver, user):
    add_endpoint(receiver, user)
    receiver.fail_next(status=400, body=b"E" * 500_000)
    with pytest.raises(PermanentDeliveryError, match="400") as caught:
        send(user)
    assert len(str(caught.value)) < 400


def test_next_checked_address_is_tried_when_one_refuses(receiver, user, channel_settings, fake_dns):
    answers, lookups = fake_dns
    answers["multi.customer.test"] = [["127.0.0.2", "127.0.0.1"]]  # nothing listens on 127.0.0.2
    channel_settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.0/8"]
    add_endpoint(receiver, user, host="multi.customer.test")

    send(user)

    assert lookups == ["multi.customer.test"] and len(receiver.events) == 1


def test_unusable_signing_secret_is_a_permanent_configuration_error(receiver, user):
    endpoint = add_endpoint(receiver, user)
    WebhookEndpoint.objects.filter(id=endpoint.id).update(secret="whsec_a")  # not base64 of anything
    with pytest.raises(PermanentDeliveryError, match="rotate it"):
        send(user)
    assert receiver.received == []
