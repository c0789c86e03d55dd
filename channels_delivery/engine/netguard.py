"""Outbound HTTP to addresses our users give us (webhook endpoints, push services), guarded
against server-side request forgery.

Every new connection resolves the host, refuses it when any address is private, loopback,
link-local, multicast or otherwise not public (unless the allow-list opens it), and then connects
to the address it checked, so a DNS answer that changes between check and connect (rebinding)
cannot slip through. TLS still verifies the certificate against the host name.
"""

import ipaddress
import os
import socket
import threading
from functools import lru_cache
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection


class BlockedAddressError(Exception):
    """The target resolves to an address we refuse to call."""


@lru_cache(maxsize=8)
def parse_allow_list(entries):
    networks, hosts = [], set()
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return tuple(networks), frozenset(hosts)


def allow_list():
    return parse_allow_list(tuple(settings.WEBHOOK_ALLOWED_HOSTS))


def is_public(address):
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_address(host, address):
    """Raise BlockedAddressError unless this address of host may be called."""
    address = ipaddress.ip_address(address.split("%", 1)[0])
    networks, hosts = allow_list()
    if host.lower().rstrip(".") in hosts or any(address in network for network in networks):
        return
    if not is_public(address):
        raise BlockedAddressError(f"{host} resolves to {address}, a non-public address")


def resolve_checked(host, port):
    """All addresses of host, each checked; refuses the host if any one is not allowed."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise socket.gaierror(f"no address for {host}")
    for *_, sockaddr in infos:
        check_address(host, sockaddr[0])
    return infos


def check_url(url):
    """Refuse a URL up front: wrong scheme, no host, or a host that resolves to a blocked address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedAddressError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
    resolve_checked(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


class GuardedConnectionMixin:
    def _new_conn(self):
        try:
            infos = resolve_checked(self._dns_host, self.port)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        last_error = None
        # Connect to the very addresses that were checked, never to a fresh DNS answer.
        for address in dict.fromkeys(sockaddr[0] for *_, sockaddr in infos):
            try:
                return connection.create_connection(
                    (address, self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except socket.timeout as error:
                last_error = ConnectTimeoutError(self, f"Connection to {self.host} timed out")
                last_error.__cause__ = error
            except OSError as error:
                last_error = NewConnectionError(self, f"Failed to establish a new connection: {error}")
                last_error.__cause__ = error
        raise last_error


class GuardedHTTPConnection(GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }


_local = threading.local()


def guarded_session():
    """A keep-alive session per process (and thread): pools are not shared across a fork."""
    # Pooled connections were checked against the allow-list in force when they opened.
    key = (os.getpid(), tuple(settings.WEBHOOK_ALLOWED_HOSTS))
    session = getattr(_local, "session", None)
    if session is None or _local.key != key:
        session = requests.Session()
        # Proxies from the environment would connect on our behalf, past the address check.
        session.trust_env = False
        adapter = GuardedAdapter(pool_connections=16, pool_maxsize=16, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _local.session, _local.key = session, key
    return session
