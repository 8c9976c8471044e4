"""A running gateway (with its Socket.IO server) for the realtime tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestServer

from gateway.app import build_app
from hub.app import Hub
from tests.support.redis_server import RedisServer


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[str]:
    """The base URL (with a trailing slash) of the hub's HTTP and Socket.IO server."""
    test_server = TestServer(build_app(hub))
    await test_server.start_server()
    yield str(test_server.make_url("/"))
    await test_server.close()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh Debian redis-server; a test may stop or restart it."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
