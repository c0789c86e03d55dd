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
import time
from functools import lru_cache
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NameResolutionError, NewConnectionError
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


# Refused whatever the interpreter's `is_global` says (its idea of "global" has changed between
# Python versions, and it judges an IPv6 address that embeds an IPv4 one by the IPv6 prefix only).
DENIED_NETWORKS = tuple(ipaddress.ip_network(network) for network in (
    "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private (RFC 1918)
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, cloud metadata services
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast
    "198.18.0.0/15",  # benchmarking
    "224.0.0.0/4", "240.0.0.0/4",  # multicast, reserved and broadcast
    "::/128", "::1/128",  # unspecified, loopback
    "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): translates into the operator's own networks
    "100::/64",  # discard
    "2001::/23",  # IETF protocol assignments (Teredo's 2001::/32 is unwrapped before this)
    "2001:db8::/32", "3fff::/20",  # documentation
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated, still routed inside some networks)
    "ff00::/8",  # multicast
))
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 is the low 32 bits
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def embedded_ipv4(address):
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if address.version != 6:
        return []
    if address.ipv4_mapped:
        return [address.ipv4_mapped]
    if address.sixtofour:
        return [address.sixtofour]
    if address.teredo:
        return list(address.teredo)  # the Teredo server, and the client behind its NAT
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


def is_public(address):
    """True when neither the address nor any IPv4 address embedded in it is in the deny table.
    IPv6 must also be global unicast (2000::/3) unless it merely wraps an IPv4 address."""
    inner = embedded_ipv4(address)
    if any(address in network for network in DENIED_NETWORKS):
        return False
    if address.version == 6 and not inner and address not in GLOBAL_UNICAST:
        return False
    return all(is_public(ipv4) for ipv4 in inner)


def check_address(host, address):
    """Raise BlockedAddressError unless this address of host may be called."""
    address = ipaddress.ip_address(address.split("%", 1)[0])
    networks, hosts = allow_list()
    if host.lower().rstrip(".") in hosts or any(address in network for network in networks):
        return
    if not is_public(address):
        inner = ", ".join(map(str, embedded_ipv4(address)))
        embeds = f" (it embeds {inner})" if inner else ""
        raise BlockedAddressError(f"{host} resolves to {address}, a non-public address{embeds}")


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
    def request(self, *args, **kwargs):
        # A bounded call watching the clock must be able to cut this connection, new or pooled.
        if (watch := getattr(_local, "watch", None)) is not None:
            watch.connections.append(self)
        return super().request(*args, **kwargs)

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


class DeadlineExceeded(requests.Timeout):
    """The whole call (connect, headers, body) took longer than its total deadline."""


class Watchdog:
    """Cuts the connections of one call when its deadline passes. Per-read timeouts alone let a
    receiver that drip-feeds a byte at a time (headers or body) hold a worker indefinitely."""

    def __init__(self, seconds):
        self.connections, self.fired = [], False
        self.timer = threading.Timer(seconds, self.fire)
        self.timer.daemon = True

    def fire(self):
        self.fired = True
        for conn in self.connections:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:  # the plain socket call: wakes a reader blocked in recv, TLS or not
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self):
        _local.watch = self
        self.timer.start()
        return self

    def __exit__(self, *exc_info):
        self.timer.cancel()
        _local.watch = None


def read_capped(response, limit):
    """At most `limit` bytes of the answer as sent (never inflated: a 10 MB gzip body must not
    become 10 GB here); the connection is dropped rather than drained when there is more."""
    body = bytearray()
    for chunk in response.raw.stream(8192, decode_content=False):
        body += chunk
        if len(body) > limit:
            response.close()
            break
    return bytes(body[:limit])


def bounded_post(url, *, data, headers, timeout, deadline, limit, method="POST"):
    """POST (or `method`) to a user-supplied URL through the guarded session: no redirects, the answer
    streamed uncompressed (`Accept-Encoding: identity`, and not inflated if compressed anyway),
    at most `limit` bytes read, and the whole call cut at `deadline` seconds. Returns the
    response (headers and status) and the bytes read; raises what requests raises, and
    DeadlineExceeded (a requests.Timeout) when the deadline cut the call."""
    started = time.monotonic()
    headers = {**headers, "Accept-Encoding": "identity"}
    try:
        with Watchdog(deadline) as watch:
            response = guarded_session().request(
                method, url, data=data, headers=headers, timeout=timeout, allow_redirects=False, stream=True
            )
            body = read_capped(response, limit)
    except (requests.RequestException, HTTPError, OSError) as error:
        if watch.fired:
            raise DeadlineExceeded(f"no complete answer within {deadline:g}s") from error
        if isinstance(error, requests.RequestException):
            raise
        raise requests.ConnectionError(f"answer cut short ({type(error).__name__})") from error
    if watch.fired and time.monotonic() - started >= deadline:
        response.close()
        raise DeadlineExceeded(f"no complete answer within {deadline:g}s")
    return response, body
