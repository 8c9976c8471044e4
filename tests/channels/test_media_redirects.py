"""Following a provider's media redirects by hand (channels/_base/redirects.py), against the
local provider mock: every hop is checked, a non-public address is refused unless it is the
origin the inbox is configured to call, and credentials stay with the first origin."""

from __future__ import annotations

import aiohttp
import pytest

from channels._base import MediaFetchError
from channels._base.redirects import check_public, get_checked
from tests.support.provider_mock import Failure, ProviderMock, TwilioApi

LIMIT = aiohttp.ClientTimeout(total=10)


def _anywhere(url: str) -> bool:
    return True


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fd00::1", "localhost"],
)
async def test_non_public_addresses_are_refused(host: str) -> None:
    with pytest.raises(MediaFetchError) as refused:
        await check_public(host, 80)
    assert not refused.value.retryable


async def test_a_public_address_passes() -> None:
    await check_public("93.184.216.34", 443)


async def test_a_local_host_is_refused_unless_it_is_the_configured_origin(
    mock: ProviderMock, http: aiohttp.ClientSession
) -> None:
    api = next(s for s in mock.sets if isinstance(s, TwilioApi))
    api.account("AC1", "token")
    url = api.add_media(mock, "AC1", b"file", "image/png")
    with pytest.raises(MediaFetchError, match="non-public"):
        async with get_checked(
            http, url, headers={}, limit=LIMIT, allowed=_anywhere, trusted_origin=None
        ):
            pass
    assert mock.of("twilio.media") == [], "refused before any request"
    headers = {"Authorization": "Basic QUMxOnRva2Vu"}
    async with get_checked(
        http, url, headers=headers, limit=LIMIT, allowed=_anywhere, trusted_origin=mock.url
    ) as response:
        assert response.status == 200 and await response.read() == b"file"


async def test_a_redirect_from_the_configured_origin_to_another_local_port_is_refused(
    mock: ProviderMock, http: aiohttp.ClientSession
) -> None:
    api = next(s for s in mock.sets if isinstance(s, TwilioApi))
    api.account("AC1", "token")
    url = api.add_media(mock, "AC1", b"file", "image/png")
    elsewhere = "http://127.0.0.1:9/metrics"  # another port of the same loopback host
    mock.fail_next("twilio.media", 1, Failure(302, headers={"Location": elsewhere}))
    with pytest.raises(MediaFetchError) as refused:
        async with get_checked(
            http, url, headers={}, limit=LIMIT, allowed=_anywhere, trusted_origin=mock.url
        ):
            pass
    assert not refused.value.retryable
    assert len(mock.of("twilio.media")) == 1


async def test_too_many_redirects_are_refused(
    mock: ProviderMock, http: aiohttp.ClientSession
) -> None:
    api = next(s for s in mock.sets if isinstance(s, TwilioApi))
    api.account("AC1", "token")
    url = api.add_media(mock, "AC1", b"file", "image/png")
    mock.fail_next("twilio.media", 10, Failure(302, headers={"Location": url}))
    with pytest.raises(MediaFetchError, match="more than 5"):
        async with get_checked(
            http, url, headers={}, limit=LIMIT, allowed=_anywhere, trusted_origin=mock.url
        ):
            pass
