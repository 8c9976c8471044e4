"""Fixtures of the console tests: Debian's chromium driven by Playwright, a hub served over real
HTTP with the console mounted, users with passwords, and a Twilio provider mock."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, async_playwright

from hub.app import Hub
from hub.config import Config
from server.compose import build_app
from tests.channels.conftest import PUBLIC_URL, quick_retries  # noqa: F401 (an autouse fixture)
from tests.support.graph_mock import GraphApi
from tests.support.provider_mock import ApiEndpoint, ProviderMock, TwilioApi

CONSOLE = Path(__file__).resolve().parents[2] / "console"


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Debian's chromium is needed (scripts/test installs it with apt-get)")


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(public_url=PUBLIC_URL)


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[str]:
    """The base URL (no trailing slash) of a gateway serving the console."""
    assert (CONSOLE / "node_modules" / "socket.io-client").exists(), "run: npm ci --prefix console"
    test_server = TestServer(build_app(hub), host="127.0.0.1")
    await test_server.start_server()
    yield str(test_server.make_url("")).rstrip("/")
    await test_server.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(TwilioApi(), ApiEndpoint())
    await provider.start()
    yield provider
    await provider.close()


@pytest.fixture
async def whatsapp_mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(GraphApi())
    await provider.start()
    yield provider
    await provider.close()
