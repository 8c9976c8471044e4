"""Downloading a provider-held file, following redirects by hand and checking every hop.

aiohttp would follow a redirect anywhere, so a file URL on the provider's host answering
``302 -> http://127.0.0.1:8080/metrics`` made the hub store its own metrics as a customer's
attachment. Here each hop must be ``http(s)``, pass the provider's host check, and (unless it is
the origin the inbox's settings point the channel at, which is how tests reach a local mock) not
be a loopback, private, link-local or otherwise non-public address, as written or as resolved.
A refused hop is a permanent failure of that file (the message is stored with the attachment
marked as not received), never a retry. The channel's credentials go only to the first URL's
origin, as aiohttp does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from urllib.parse import urljoin, urlsplit

import aiohttp

from hub.contracts.channel import MediaFetchError

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in; ``ValueError`` for a bad port."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _refused(message: str) -> MediaFetchError:
    return MediaFetchError(message, retryable=False)


def _public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_public(host: str, port: int | None) -> None:
    """Refuse a host that is, or resolves to, an address that is not public."""
    if host == "localhost" or host.endswith(".localhost"):
        raise _refused(f"a media redirect to {host} is not followed")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if not _public(host):
            raise _refused(f"a media URL at the non-public address {host} is not followed")
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the download itself fails, and is retried, as for any unreachable host
    for info in infos:
        if not _public(str(info[4][0])):
            raise _refused(f"{host} resolves to a non-public address; not followed")


def _check_hop(url: str, allowed: Callable[[str], bool]) -> tuple[str, str, int | None]:
    try:
        where = origin(url)
    except ValueError as exc:
        raise _refused("a media URL with an invalid port") from exc
    if where[0] not in ("http", "https") or not where[1]:
        raise _refused(f"a media redirect to a {where[0] or 'relative'} URL is not followed")
    if not allowed(url):
        raise _refused(f"a media redirect to {where[1]} (not the provider's) is not followed")
    return where


@contextlib.asynccontextmanager
async def get_checked(
    http: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str],
    limit: aiohttp.ClientTimeout,
    allowed: Callable[[str], bool],
    trusted_origin: str | None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET ``url``, following up to :data:`MAX_REDIRECTS` redirects, each hop checked;
    ``trusted_origin``: the inbox's configured API base URL, exempt from the address check."""
    first = None
    trusted = origin(trusted_origin) if trusted_origin else None
    for _ in range(MAX_REDIRECTS + 1):
        where = _check_hop(url, allowed)
        first = first or where
        if where != trusted:
            await check_public(where[1], where[2])
        sent = (
            dict(headers)
            if where == first
            else {k: v for k, v in headers.items() if k.lower() != "authorization"}
        )
        async with http.get(url, headers=sent, timeout=limit, allow_redirects=False) as response:
            if response.status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise _refused(f"a media redirect ({response.status}) without a Location")
                url = urljoin(url, location)
                continue
            yield response
            return
    raise _refused(f"more than {MAX_REDIRECTS} media redirects")
