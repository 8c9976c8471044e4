"""Where an outgoing webhook may go: public addresses only, unless the operator allows private
ones (``HUB_WEBHOOK_ALLOW_PRIVATE``).

Checked twice: when a subscription is saved (its URL's host, resolved), and at every connection
(the resolver below drops every address that is not allowed), so a name that later resolves to
an internal address (DNS rebinding) still cannot reach the hub's own network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class AddressRefused(ValueError):
    """The URL is not one a webhook may be sent to (the message says why)."""


def public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> tuple[str, str, int]:
    """The URL's scheme, host and port, or :class:`AddressRefused`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise AddressRefused("the URL must start with http:// or https://")
    if not parts.hostname:
        raise AddressRefused("the URL has no host")
    if parts.username or parts.password:
        raise AddressRefused("the URL must not hold credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise AddressRefused("the URL's port is not valid") from exc
    return parts.scheme, parts.hostname, port


async def check_destination(url: str, allow_private: bool, *, resolve: bool = True) -> None:
    """Refuse a URL whose host is (or resolves to) a non-public address; ``resolve=False``
    checks only an address literal (names are left to :class:`PublicOnlyResolver`)."""
    _, host, port = check_url(url)
    if allow_private:
        return
    try:
        addresses = [ipaddress.ip_address(host).compressed]
    except ValueError:
        if not resolve:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise AddressRefused(f"the host {host!r} cannot be resolved") from exc
        addresses = [str(info[4][0]) for info in infos]
    refused = [a for a in addresses if not public(a)]
    if refused or not addresses:
        raise AddressRefused(
            "the URL points to a private, loopback or reserved address; an administrator can "
            "allow those with HUB_WEBHOOK_ALLOW_PRIVATE"
        )


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, without the addresses a webhook may not reach."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return found
        allowed = [r for r in found if public(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to addresses webhooks may not reach")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
