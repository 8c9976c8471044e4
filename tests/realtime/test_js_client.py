"""The official JS client (socket.io-client@4 from npm, run by Node.js) speaks the protocol: it
connects with a token, receives events, and after a reconnect with its last seq gets what it missed.
`scripts/test` installs the client with `npm ci` in tests/realtime/js."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.app import Hub
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres
JS = Path(__file__).parent / "js"
TOKEN = "test-bootstrap-token"


async def start_agent(
    url: str, count: int, last_seq: int | None = None, token: str = TOKEN
) -> asyncio.subprocess.Process:
    node = shutil.which("node")
    assert node, "Node.js is needed for the JS client test"
    assert (JS / "node_modules" / "socket.io-client").exists(), (
        "run: npm ci --prefix tests/realtime/js"
    )
    return await asyncio.create_subprocess_exec(
        node,
        str(JS / "agent.mjs"),
        url,
        token,
        str(count),
        "" if last_seq is None else str(last_seq),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_line(proc: asyncio.subprocess.Process) -> Any:
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        line = await proc.stdout.readline()
    assert line, (await proc.stderr.read()).decode() if proc.stderr else "no output"
    text = line.decode().strip()
    return text if text == "ready" else json.loads(text)


async def test_official_js_client_receives_and_replays(hub: Hub, server: str) -> None:
    inbox = await ApiInbox.create(hub, server)
    async with aiohttp.ClientSession() as session:

        async def post(message_id: str) -> None:
            await inbox.post(session, api_body(message_id, text=f"text {message_id}"))

        refused = await start_agent(server, 1, token="wrong")
        assert (await read_line(refused))["data"]["code"] == "invalid_token"
        await refused.wait()

        first = await start_agent(server, 3)
        assert await read_line(first) == "ready"
        await post("js-1")
        got = (await read_line(first))["events"]
        await first.wait()
        assert sorted(e["type"] for e in got) == [
            "contact.created",
            "conversation.created",
            "message.received",
        ]
        last = max(e["seq"] for e in got)

        await post("js-2")
        await post("js-3")
        await asyncio.sleep(0.3)
        resumed = await start_agent(server, 2, last_seq=last)
        assert await read_line(resumed) == "ready"
        missed = (await read_line(resumed))["events"]
        await resumed.wait()
        assert [e["content"] for e in missed] == ["text js-2", "text js-3"]
        assert [e["seq"] for e in missed] == [last + 1, last + 2]
