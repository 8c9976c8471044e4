"""Fixtures of the voice tests: a hub with its gateway on a real HTTP server, a voice inbox in
listen mode on a loopback port, and agents with a console socket and a phone (a sipp)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from channels.sip.part import voice_of
from channels.sip.service import VoiceService
from hub.app import Hub
from server.compose import build_app
from tests.api.admin_support import make_user
from tests.conftest import ADMIN_TOKEN
from tests.realtime.agents import Agent
from tests.support.processes import free_port
from tests.voice import sipp

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclasses.dataclass
class VoiceDesk:
    hub: Hub
    url: str
    http: aiohttp.ClientSession
    workdir: Path

    @property
    def voice(self) -> VoiceService:
        service = voice_of(self.hub)
        assert service is not None, "the voice part runs in role all"
        return service

    async def api(
        self, method: str, path: str, headers: dict[str, str] | None = None, **body: Any
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, self.url + path, headers=headers or ADMIN, json=body or None
        ) as response:
            data = await response.json() if response.status != 204 else None
            return response.status, data

    def dial(
        self, scenario: str, port: int, *args: str, name: str = "caller"
    ) -> contextlib.AbstractAsyncContextManager[asyncio.subprocess.Process]:
        """sipp calling the voice inbox on ``port`` (one call unless ``args`` say otherwise)."""
        calls = () if "-m" in args else ("-m", "1")
        return sipp.sipp(
            scenario,
            self.workdir,
            f"127.0.0.1:{port}",
            "-p",
            str(free_port()),
            "-s",
            "hub",
            *calls,
            *args,
            name=name,
        )

    def phone(
        self, scenario: str, port: int, name: str = "phone"
    ) -> contextlib.AbstractAsyncContextManager[asyncio.subprocess.Process]:
        """sipp answering on ``port`` once: an agent's phone or a customer's."""
        return sipp.sipp(scenario, self.workdir, "-p", str(port), "-m", "1", name=name)

    async def voice_inbox(self, **settings: Any) -> tuple[str, int]:
        """A voice inbox listening on a fresh loopback port; its id and the port."""
        port = free_port()
        status, inbox = await self.api(
            "POST",
            "/api/v1/inboxes",
            name="Phones",
            channel="sip",
            settings={"mode": "listen", "bind": "127.0.0.1", "port": port, **settings},
        )
        assert status == 201, inbox
        await self.voice.sync()
        return inbox["id"], port

    async def agent(
        self, inbox_id: str, phone_port: int | None
    ) -> tuple[str, dict[str, str], Agent]:
        """An agent of the inbox, their phone set through the profile API, with a console
        socket connected (so they are online)."""
        user_id, headers = await make_user(self.hub, inboxes=[inbox_id], name="Agent")
        if phone_port is not None:
            status, profile = await self.api(
                "PATCH",
                "/api/v1/profile",
                headers,
                sip_uri=f"sip:agent@127.0.0.1:{phone_port}",
            )
            assert status == 200 and profile["sip_uri"].endswith(str(phone_port)), profile
        socket = Agent()
        await socket.connect(self.url, token=headers["Authorization"].split()[1])
        return user_id, headers, socket

    async def settled(self, within: float = 15) -> list[Any]:
        """The calls once none is in progress (a hang-up is recorded just after sipp exits)."""
        async with asyncio.timeout(within):
            while await self.hub.pool.fetchval("SELECT count(*) FROM calls WHERE state <> 'ended'"):
                await asyncio.sleep(0.05)
        return list(await self.hub.pool.fetch("SELECT * FROM calls ORDER BY created_at"))

    async def timeline(
        self, conversation_id: str, until: str, within: float = 30, count: int = 1
    ) -> list[Any]:
        """The conversation's call events once ``until`` is among them (the journal writes
        them as they cross the bus)."""
        events: list[Any] = []
        try:
            async with asyncio.timeout(within):
                while True:
                    status, page = await self.api(
                        "GET", f"/api/v1/conversations/{conversation_id}/events?limit=200"
                    )
                    assert status == 200, page
                    events = [e for e in page["data"] if e["type"].startswith("call.")]
                    if sum(e["type"] == until for e in events) >= count:
                        return events
                    await asyncio.sleep(0.1)
        except TimeoutError:
            calls = await self.hub.pool.fetch("SELECT * FROM calls")
            raise AssertionError(
                f"no {until} within {within} s; timeline: {[e['type'] for e in events]}; "
                f"calls: {[dict(c) for c in calls]}"
            ) from None


@pytest.fixture
async def desk(hub: Hub, tmp_path: Path) -> AsyncIterator[VoiceDesk]:
    server = TestServer(build_app(hub), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield VoiceDesk(hub, str(server.make_url("")), http, tmp_path)
    await server.close()
