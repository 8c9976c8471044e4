"""Fixtures of the channel tests: a hub that knows its public URL, quick outbound retries, the
provider mock, a real HTTP server and an agent socket connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from channels import delivery
from channels._base.outbound import RetryPolicy
from hub.app import Hub
from hub.config import Config
from tests.conftest import ADMIN_TOKEN
from tests.realtime.agents import Agent
from tests.support.provider_mock import ApiEndpoint, ProviderMock, TwilioApi

PUBLIC_URL = "https://hub.example.test"
RETRY = RetryPolicy(attempts=3, initial=0.01, maximum=0.05, max_retry_after=0.05)


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(public_url=PUBLIC_URL)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(delivery, "RETRY", RETRY)
    yield


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(TwilioApi(), ApiEndpoint())
    await provider.start()
    yield provider
    await provider.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def agent(server: str) -> AsyncIterator[Agent]:
    """An agent socket connected to :func:`server` with the tests' administrator token."""
    connected = Agent()
    await connected.connect(server + "/", token=ADMIN_TOKEN)
    yield connected
    await connected.client.disconnect()


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[str]:
    """The base URL (no trailing slash) of the hub's HTTP and Socket.IO server."""
    from server.compose import build_app

    test_server = TestServer(build_app(hub))
    await test_server.start_server()
    yield str(test_server.make_url("")).rstrip("/")
    await test_server.close()
