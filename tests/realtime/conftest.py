"""A running gateway (with its Socket.IO server) for the realtime tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from hub.app import Hub
from server.compose import build_app


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[str]:
    """The base URL (with a trailing slash) of the hub's HTTP and Socket.IO server."""
    test_server = TestServer(build_app(hub))
    await test_server.start_server()
    yield str(test_server.make_url("/"))
    await test_server.close()
