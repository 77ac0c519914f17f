"""Webhook URLs may reach public addresses only (server-side request forgery guard).

An admin-supplied URL must not make the gateway call its own machine, the
cluster's services, private networks or a cloud metadata endpoint.  The check
is on addresses, after DNS resolution, at the moment of connecting: the
webhook client's connections go through `GuardedBackend`, which resolves the
host once, refuses if any address is forbidden, and connects to the address it
checked (so a second, rebinding DNS answer is never used; TLS still verifies
the host name).  Every connection, including one a redirect would open, goes
through it.  `MEETPLANE_WEBHOOK_ALLOWED_NETWORKS` lists networks that are
allowed anyway (a receiver on the same host or inside the cluster).
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

FORBIDDEN_REASON = "the URL's host is not a public address"


class ForbiddenAddress(httpcore.ConnectError):
    """The host resolves to an address webhooks may not reach."""


def parse_networks(value: str) -> list[IPNetwork]:
    """`MEETPLANE_WEBHOOK_ALLOWED_NETWORKS`: comma-separated CIDRs or addresses."""
    return [
        ipaddress.ip_network(item.strip(), strict=False)
        for item in value.split(",")
        if item.strip()
    ]


def _plain(address: IPAddress) -> IPAddress:
    # ::ffff:127.0.0.1 and 64:ff9b::/96-style embeddings are judged as the IPv4 inside.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AddressPolicy:
    """Which addresses a webhook may reach: public ones, and the allowed networks."""

    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self.allowed = list(allowed)

    def permits(self, address: str) -> bool:
        """Whether one resolved address may be connected to."""
        ip = _plain(ipaddress.ip_address(address.split("%", 1)[0]))
        if any(ip in network for network in self.allowed):
            return True
        # is_global is False for loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
        # link-local (169.254/16 with the metadata endpoint, fe80::/10), shared (100.64/10),
        # reserved and unspecified addresses.
        return ip.is_global and not ip.is_multicast

    async def check(self, host: str, port: int, resolve: Resolver) -> list[str]:
        """The host's addresses, or `ForbiddenAddress` if any of them is not permitted."""
        try:
            addresses = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            addresses = await resolve(host, port)
        if not addresses or not all(self.permits(a) for a in addresses):
            raise ForbiddenAddress(FORBIDDEN_REASON)
        return addresses


async def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (raises socket.gaierror)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy permits."""

    def __init__(self, policy: AddressPolicy, resolve: Resolver = system_resolve) -> None:
        self.policy = policy
        self.resolve = resolve
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve, check every address, connect to a checked one."""
        addresses = await self.policy.check(host, port, self.resolve)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: webhooks go over TCP."""
        raise ForbiddenAddress("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        """As the inner backend."""
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over `GuardedBackend` (no proxies: they would hide the target)."""

    def __init__(self, policy: AddressPolicy, resolve: Resolver = system_resolve) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a network backend argument; rebuild it with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(policy, resolve),
        )


def guarded_client(
    policy: AddressPolicy, timeout: float, resolve: Resolver = system_resolve
) -> httpx.AsyncClient:
    """An HTTP client for webhooks: public addresses only, redirects not followed."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, resolve),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
