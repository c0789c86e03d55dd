"""The outbound guard judges every IPv6 form that carries an IPv4 address by that IPv4 address,
and refuses what its own deny table names, whatever the interpreter's `is_global` says."""

import ipaddress
import uuid

import pytest

from channels_delivery.engine import netguard
from channels_delivery.engine.errors import PermanentDeliveryError
from channels_delivery.channels.webhook.channel import WebhookMessage
from channels_delivery.channels.webhook.providers import SignedWebhook
from notifications.models import WebhookEndpoint


@pytest.mark.parametrize(
    "address, inner",
    [
        ("64:ff9b::a00:5", "10.0.0.5"),  # NAT64 well-known prefix
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # cloud metadata through NAT64
        ("64:ff9b:1::a00:5", ""),  # local-use NAT64 prefix: refused as a whole
        ("64:ff9b:1:ffff::808:808", ""),
        ("2002:a00:5::1", "10.0.0.5"),  # 6to4
        ("2002:7f00:1::1", "127.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffa", "10.0.0.5"),  # Teredo, client 10.0.0.5 (obfuscated)
        ("::10.0.0.5", "10.0.0.5"),  # IPv4-compatible
        ("::127.0.0.1", "127.0.0.1"),
        ("::ffff:10.0.0.5", "10.0.0.5"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "169.254.169.254"),
        ("fec0::1", ""),  # site-local
        ("fd00::1", ""),  # unique local
        ("100::1", ""),  # discard prefix
        ("2001:db8::1", ""),  # documentation
        ("5f00::1", ""),  # outside global unicast
        ("192.0.0.8", ""),
        ("198.18.0.1", ""),
        ("192.88.99.1", ""),
        ("255.255.255.255", ""),
    ],
)
def test_embedded_and_reserved_addresses_are_refused(settings, address, inner):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(netguard.BlockedAddressError, match="non-public address") as refused:
        netguard.check_address("hooks.customer.test", address)
    if inner:
        assert "it embeds" in str(refused.value) and inner in str(refused.value)


def test_the_teredo_client_is_unwrapped_from_its_obfuscated_bits():
    server, client = netguard.embedded_ipv4(ipaddress.ip_address("2001:0:4136:e378:8000:63bf:f5ff:fffa"))
    assert (str(server), str(client)) == ("65.54.227.120", "10.0.0.5")


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "64:ff9b::808:808", "::ffff:8.8.8.8",
     "2002:808:808::1"],
)
def test_public_addresses_and_public_embeddings_pass(settings, address):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    netguard.check_address("hooks.customer.test", address)


def test_every_denied_network_is_refused_even_where_is_global_disagrees(settings):
    """The deny table is the authority: no entry of it passes, at its first and last address."""
    settings.WEBHOOK_ALLOWED_HOSTS = []
    for network in netguard.DENIED_NETWORKS:
        for address in (network[0], network[-1]):
            assert not netguard.is_public(address), address


@pytest.fixture
def nat64_dns(monkeypatch):
    """A customer's host name that resolves (AAAA only) to the NAT64 form of 127.0.0.1."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "nat64.customer.test":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::7f00:1", port, 0, 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(netguard.socket, "getaddrinfo", getaddrinfo)


@pytest.mark.django_db
def test_a_webhook_to_a_name_resolving_to_nat64_loopback_is_refused_before_connecting(
    nat64_dns, make_user, channel_settings, fakes
):
    channel_settings.WEBHOOK_ALLOWED_HOSTS = []
    user = make_user("mallory")
    endpoint = WebhookEndpoint.objects.create(user=user, url="http://nat64.customer.test:9/hook")
    message = WebhookMessage.from_dict({"event": {"type": "t"}, "endpoint_ids": [endpoint.id]})
    with pytest.raises(PermanentDeliveryError, match=r"64:ff9b::7f00:1, a non-public address \(it embeds 127.0.0.1\)"):
        SignedWebhook().send(uuid.uuid4(), message)


@pytest.mark.django_db
def test_an_api_registered_webhook_naming_an_embedded_private_address_is_a_400(make_user, user_api, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    user = make_user("mallory")
    answer = user_api(user).post("/api/me/webhooks/", {"url": "http://[64:ff9b::a00:5]/hook"}, format="json")
    assert answer.status_code == 400
    assert "url" in answer.json()["error"]["fields"]
    assert not WebhookEndpoint.objects.exists()
