"""A client that stops reading is cut off once its unsent bytes pass the limit, while the other
agents keep receiving everything; the frames every client gets are plain, well-formed WebSocket
frames (the shared-frame fan-out)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.app import Hub
from hub.config import Config
from hub.metrics import REALTIME_SLOW_CUTOFFS
from realtime.fanout import Fanout, use_shared_frames
from tests.realtime.agents import TOKEN, agent_collecting
from tests.support.api_channel import ApiInbox, api_body


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(realtime_socket_buffer_kib=64)


class RawAgent:
    """A hand-rolled WebSocket + Engine.IO client with a tiny receive buffer, so that when it
    stops reading the server's buffer for it fills quickly."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: str) -> RawAgent:
        url = urlsplit(server)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"permessage-deflate" not in head.lower()
        agent = cls(reader, writer)
        opened = await agent.read_text()
        assert opened.startswith("0{"), opened
        agent.send_text("40/agent," + orjson.dumps({"token": TOKEN}).decode())
        while not (await agent.read_text()).startswith("40/agent,"):
            pass
        return agent

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        self.writer.write(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)

    async def read_text(self) -> str:
        first, second = await self.reader.readexactly(2)
        assert first == 0x81, f"a final text frame, got {first:#x}"
        assert not second & 0x80, "server frames are not masked"
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return (await self.reader.readexactly(size)).decode()

    async def closed_by_server(self) -> bool:
        """Read whatever is buffered; True once the server has closed the connection."""
        try:
            while await self.reader.read(1 << 16):
                pass
        except ConnectionResetError:
            pass
        return True


@pytest.mark.postgres
async def test_a_client_that_stops_reading_is_cut_off_and_others_get_everything(
    hub: Hub, server: str
) -> None:
    inbox = await ApiInbox.create(hub, server)
    slow = await RawAgent.connect(server)
    fast, seen = await agent_collecting(server, "message.received")
    cut_before = REALTIME_SLOW_CUTOFFS._value.get()
    count, text = 300, "ශ්‍රී ලංකා " * 1500  # ~45 KB each in UTF-8: 13 MB in all
    async with aiohttp.ClientSession() as session:
        for start in range(0, count, 20):
            await asyncio.gather(
                *(
                    inbox.post(
                        session, api_body(f"slow-{n}", identifier=f"+9477{n:07d}", text=text)
                    )
                    for n in range(start, start + 20)
                )
            )
    async with asyncio.timeout(30):
        while len(seen) < count:
            await asyncio.sleep(0.05)
    assert sorted(e["event"]["payload"]["provider_message_id"] for e in seen) == sorted(
        f"slow-{n}" for n in range(count)
    )
    assert all(e["event"]["payload"]["content"] == text for e in seen), "frames arrive intact"
    assert REALTIME_SLOW_CUTOFFS._value.get() > cut_before
    async with asyncio.timeout(10):
        assert await slow.closed_by_server()
    await fast.disconnect()


@pytest.mark.postgres
async def test_events_reach_a_client_over_long_polling_too(hub: Hub, server: str) -> None:
    """Clients that cannot upgrade to WebSocket get the same events through Engine.IO's queue."""
    client = socketio.AsyncClient(reconnection=False)
    batches: list[Any] = []
    client.on("events", batches.extend, namespace="/agent")
    await client.connect(
        server, namespaces=["/agent"], auth={"token": TOKEN}, transports=["polling"]
    )
    inbox = await ApiInbox.create(hub, server, "Polling")
    await inbox.send(api_body("poll-1"))
    async with asyncio.timeout(10):
        while not any(e["type"] == "message.received" for e in batches):
            await asyncio.sleep(0.05)
    await client.disconnect()


async def test_a_shared_frame_never_overtakes_an_earlier_emit_to_the_same_socket() -> None:
    """Engine.IO's writer takes a packet off its queue a loop iteration or two before it writes
    it (Python 3.11's ``wait_for``); a direct write in between would overtake it."""
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins=[])
    use_shared_frames(sio)
    fanout = Fanout(sio, "/order", max_buffer=1 << 26)
    sids: list[str] = []

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        sids.append(sid)

    sio.on("connect", connect, namespace="/order")
    app = web.Application()
    sio.attach(app)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(server.make_url("/socket.io/?EIO=4&transport=websocket"))
            await ws.receive()  # the Engine.IO open packet
            await ws.send_str("40/order,")
            await ws.receive()  # the namespace connect
            for i in range(30):
                await sio.emit("queued", i, to=sids[0], namespace="/order")
                for _ in range(i % 3):
                    await asyncio.sleep(0)
                await fanout.send(sids, "shared", orjson.dumps(i))
                await asyncio.sleep(0.005)
            got = [(await ws.receive()).data for _ in range(60)]
            await ws.close()
    finally:
        await server.close()
    expected = [f'42/order,["{name}",{i}]' for i in range(30) for name in ("queued", "shared")]
    assert got == expected
