"""The outbound network policy for destinations users type in (the generic REST connector).

A portal that forwards data to user-supplied URLs must not become a way into its own network:
``http://169.254.169.254/`` (cloud metadata), ``http://localhost:6379/`` or ``http://10.0.0.5/``
are refused. The check runs when each connection is opened, on the very addresses the socket
then connects to (``GuardedAdapter``), so a host name that resolves to a public address when
the user saves it and to a private one later (DNS rebinding) is still refused. An allow-list
(host names, addresses or CIDR networks) lets tests and on-premises deployments reach local
destinations on purpose; cloud-metadata addresses need to be listed exactly.

Every refusal reads the same to the user (``REFUSED``), whether the host is loopback, private,
link-local, cloud metadata or a name that does not resolve: a detailed answer ("localhost
(127.0.0.1) is a loopback address", "does not resolve") would let anyone map the internal
network and its DNS through the portal. The detail goes to the ``connectors.netguard`` log
at WARNING, for operators.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import _set_socket_options, allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from .errors import UnsafeDestination

logger = logging.getLogger("connectors.netguard")

REFUSED = (
    "The destination is not allowed: its host must be a public internet address, or a name "
    "that resolves to one. An administrator can allow specific private hosts."
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance-metadata services: AWS (IMDS, ECS task metadata, DNS), GCP and Azure share
# 169.254.169.254; AWS IMDS over IPv6; Alibaba; Azure's wire server; Oracle's legacy one.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), which is what it reaches."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def classify(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination ("a loopback address"…), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return classify(embedded)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL:
        return "a unique-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved, non-public address"
    return None


@dataclass(frozen=True)
class NetworkPolicy:
    """Which destinations outbound requests may reach.

    ``allowed`` entries are host names (matched exactly, case-insensitively, and then trusted
    whatever they resolve to), IP addresses or CIDR networks that may be reached although
    they are not public. Build with ``NetworkPolicy.from_entries``.
    """

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> NetworkPolicy:
        hosts, networks = set(), []
        for entry in entries:
            text = entry.strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            except ValueError:
                hosts.add(text.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def check_url(self, url: str, *, label: str = "The destination") -> None:
        """Refuse URLs that are not plain http(s) to a host, or that carry credentials."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnsafeDestination(f"{label} {_shown(url)} is not an http:// or https:// URL.")
        if parts.username is not None or parts.password is not None:
            raise UnsafeDestination(
                f"{label} URL must not contain a user name or password; use the credential's "
                "authentication fields instead."
            )
        try:
            parts.port  # noqa: B018 (raises ValueError for a malformed port)
        except ValueError:
            raise UnsafeDestination(f"{label} {_shown(url)} has an invalid port.") from None
        literal = _ip_literal(parts.hostname)
        if literal is not None:
            self.check_address(parts.hostname, literal)

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def check_address(self, host: str, address: IPAddress) -> None:
        """Raise ``UnsafeDestination`` (``REFUSED``) unless ``host`` may be reached at
        ``address``; the log says why."""
        if self.host_allowed(host):
            return
        reason = classify(address)
        if reason is None:
            return
        if address in METADATA_ADDRESSES:
            allowed = any(n.num_addresses == 1 and address in n for n in self.networks)
        else:
            allowed = any(address in network for network in self.networks)
        if allowed:
            return
        refuse(f"{host!r} ({address}) is {reason}")


def refuse(detail: str) -> NoReturn:
    """Raise the one refusal users see; ``detail`` (why, never a secret) goes to the log."""
    logger.warning("Outbound request refused by the network policy: %s", detail)
    raise UnsafeDestination(REFUSED)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _shown(url: str) -> str:
    parts = urlsplit(url)
    # Never echo a user:password@ part back.
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" if parts.scheme else repr(url[:60])


# Enforcement at connect time ------------------------------------------------------------------
class _GuardedConnectionMixin:
    """Resolves, checks every address, then connects to a checked one (no second lookup)."""

    policy: NetworkPolicy

    def _new_conn(self) -> socket.socket:
        host = self._dns_host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, self.port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as error:
            if self.policy.host_allowed(self.host):
                raise NameResolutionError(self.host, self, error) from error
            # "Does not resolve" beside "is private" would tell which internal names exist.
            refuse(f"{self.host!r} does not resolve ({error})")
        # Any unsafe address refuses the host: a name that resolves partly inside the network
        # is either an attack or a misconfiguration, and round-robin would reach it sooner or later.
        for *_, sockaddr in infos:
            self.policy.check_address(self.host, ipaddress.ip_address(sockaddr[0].split("%")[0]))
        last_error: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                _set_socket_options(sock, self.socket_options)
                if self.timeout is not _DEFAULT_TIMEOUT:
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
            except TimeoutError as error:
                sock.close()
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from error
            except OSError as error:
                sock.close()
                last_error = error
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")


@functools.lru_cache(maxsize=64)
def _pool_classes(policy: NetworkPolicy) -> dict[str, type]:
    http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), {})
    https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), {})
    http_conn.policy = https_conn.policy = policy
    return {
        "http": type(
            "GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}
        ),
        "https": type(
            "GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}
        ),
    }


class GuardedAdapter(HTTPAdapter):
    """A ``requests`` transport adapter whose connections obey a ``NetworkPolicy``.

    Proxies are refused: through a proxy the policy would check the proxy, not the target.
    """

    def __init__(self, policy: NetworkPolicy, **kwargs) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise UnsafeDestination(
            "Proxies are not used for destinations checked by the network policy."
        )
