"""A hub whose outgoing webhooks may reach loopback receivers and retry quickly, its gateway, and
a local receiver in the format the hub sends."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.actions.setup import hash_token
from hub.app import Hub
from hub.config import Config
from server.compose import build_app, build_hub
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    """The suite's settings (analytics off: see tests/conftest.py), receivers on loopback
    allowed, short retries and polls."""
    return hub_config.replace(
        webhook_allow_private=True, webhook_retry_base_ms=40, automation_poll_ms=50
    )


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[str]:
    """The base URL (without a trailing slash) of the hub's gateway."""
    test_server = TestServer(build_app(hub))
    await test_server.start_server()
    yield str(test_server.make_url("")).rstrip("/")
    await test_server.close()


@dataclasses.dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclasses.dataclass
class Receiver:
    """A customer's endpoint: answers ``fail_first`` requests with 500, then 200 (or ``hang``
    seconds of silence per request), and keeps every request."""

    fail_first: int = 0
    always_fail: bool = False
    hang: float = 0.0
    url: str = ""
    hits: list[Hit] = dataclasses.field(default_factory=list)
    arrived: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    #: set when a request starts (before any hang)
    started: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.started.set()
        if self.hang:
            await asyncio.sleep(self.hang)
        failing = self.always_fail or len(self.hits) < self.fail_first
        status = 500 if failing else 200
        self.hits.append(Hit(dict(request.headers), body, status))
        self.arrived.set()
        return web.Response(status=status, text="not now" if failing else "ok")

    @property
    def accepted(self) -> list[Hit]:
        return [h for h in self.hits if h.status == 200]

    async def until(self, accepted: int, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while len(self.accepted) < accepted:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    found.url = str(test_server.make_url("/hook"))
    yield found
    await test_server.close()


async def subscribe(http: Any, server: str, url: str, event_types: list[str]) -> dict[str, Any]:
    async with http.post(
        f"{server}/api/v1/webhooks",
        json={"name": "CRM", "url": url, "event_types": event_types},
        headers=ADMIN,
    ) as response:
        assert response.status == 201, await response.text()
        made: dict[str, Any] = await response.json()
        return made


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[tuple[Hub, str]]:
    """A hub of its own (for a setting the ``hub`` fixture does not have, or a restart), with
    the tests' administrator token and its gateway's base URL."""
    instance = build_hub(config)
    await instance.start()
    test_server: TestServer | None = None
    try:
        await instance.pool.execute(
            """INSERT INTO api_tokens (id, account_id, name, role, token_hash)
               VALUES ('tests-admin', $1, 'tests', 'administrator', $2)
               ON CONFLICT DO NOTHING""",
            instance.account_id,
            hash_token(ADMIN_TOKEN),
        )
        test_server = TestServer(build_app(instance))
        await test_server.start_server()
        yield instance, str(test_server.make_url("")).rstrip("/")
    finally:
        if test_server is not None:
            await test_server.close()
        await instance.stop()
