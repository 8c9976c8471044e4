"""Resource abuse against a real listening gateway: idle TCP connections, slowly sent headers
(slowloris), a stalled request body, a connection flood from one address, idle Engine.IO sockets
that never authenticate, and many idle authenticated agent sockets. The limits must hold (each
abuser is closed, refused or answered 4xx) while the process stays up and keeps serving a normal
client from another address (served at all, no timing asserted)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import socketio
from aiohttp import web

from gateway.limits import ConnectionCaps
from hub.app import Hub
from hub.config import Config
from server.compose import build_app
from tests.conftest import ADMIN_TOKEN
from tests.support.api_channel import ApiInbox, api_body, signed_headers

pytestmark = pytest.mark.postgres
ABUSER = "127.0.0.2"  # loopback is all of 127/8: the abuse comes from another address
CAP = 20
#: how long a test waits for the server to act on a 1 s limit (a deadline, not a measurement)
GRACE = 15.0
METRICS_TOKEN = "metrics-token-for-the-abuse-tests"


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(
        http_idle_timeout=1.0,
        http_body_timeout=1.0,
        http_body_deadline=3.0,
        max_connections_per_address=CAP,
        realtime_handshake_timeout=1.0,
        metrics_token=METRICS_TOKEN,
    )


@pytest.fixture
async def base(hub: Hub) -> AsyncIterator[str]:
    runner = web.AppRunner(build_app(hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site.port}"
    await runner.cleanup()


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def connect(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port_of(base), local_addr=(ABUSER, 0))


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (within GRACE)."""
    data = b""
    async with asyncio.timeout(GRACE):
        try:
            while chunk := await reader.read(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


async def served(base: str) -> None:
    """A normal client (another address) gets its answers."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=GRACE)) as session:
        async with session.get(f"{base}/healthz") as response:
            assert response.status == 200
        async with session.get(
            f"{base}/api/v1/conversations", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as response:
            assert response.status == 200, await response.text()


async def metric(base: str, name: str) -> float:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/metrics", headers=headers) as response,
    ):
        assert response.status == 200
        text = await response.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_idle_connections_and_slow_headers_are_closed_while_others_are_served(
    base: str,
) -> None:
    idle = [await connect(base) for _ in range(8)]
    slow = [await connect(base) for _ in range(8)]
    for _, writer in slow:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

    async def drip(writer: asyncio.StreamWriter) -> None:
        """A header line every 0.2 s, never the blank line that ends the head."""
        with contextlib.suppress(ConnectionError, OSError):
            for n in range(10 * int(GRACE)):
                writer.write(f"X-Slow-{n}: {'a' * 10}\r\n".encode())
                await writer.drain()
                await asyncio.sleep(0.2)

    drips = [asyncio.create_task(drip(w)) for _, w in slow]
    await served(base)  # while every abuser is connected
    answers = await asyncio.gather(*(closed_by_server(r) for r, _ in idle + slow))
    assert answers == [b""] * len(answers), "closed without serving anything"
    for task in drips:
        task.cancel()
    for _, writer in idle + slow:
        writer.close()
    await served(base)


async def test_a_stalled_body_gets_408_and_nothing_is_stored(base: str, hub: Hub) -> None:
    inbox = await ApiInbox.create(hub, base)
    body = api_body("stalled-1")
    headers = signed_headers(inbox.made.secrets["signing_secret"], body)
    reader, writer = await connect(base)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"POST /webhooks/api/{inbox.id} HTTP/1.1\r\nHost: x\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:10]  # then nothing more
    )
    answer = await closed_by_server(reader)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "body_timeout"
    writer.close()
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await metric(base, "hub_http_body_timeouts_total") >= 1
    await served(base)
    await inbox.send(body)  # the same message, sent at normal speed, is taken
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_a_body_dribbled_slower_than_the_deadline_gets_408(base: str, hub: Hub) -> None:
    """One byte every 0.3 s never stalls for the 1 s stall limit, but the whole body may take
    only 3 s (``http_body_deadline``): the request gets 408 long before its 100,000 bytes."""
    inbox = await ApiInbox.create(hub, base)
    reader, writer = await connect(base)
    writer.write(
        f"POST /webhooks/api/{inbox.id} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n".encode()
    )

    async def dribble() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for _ in range(100_000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.3)

    task = asyncio.create_task(dribble())
    try:
        answer = await closed_by_server(reader)
    finally:
        task.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    error = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "body_timeout"
    assert "3 s" in error["message"]
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 0
    await served(base)


async def test_a_connection_flood_from_one_address_is_capped(base: str) -> None:
    flood = [await connect(base) for _ in range(3 * CAP)]
    # connections over the cap are answered 429 and closed at once; the first CAP stay open
    refused = 0
    for reader, _ in flood[CAP:]:
        answer = await closed_by_server(reader)
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:100]
        refused += 1
    assert refused == 2 * CAP
    assert await metric(base, 'hub_connections_refused_total{reason="per_address"}') == 2 * CAP
    await served(base)  # another address is not held back by the flood
    for _, writer in flood:
        writer.close()
    await asyncio.sleep(0.2)
    reader, writer = await connect(base)  # the address may connect again once it let go
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await closed_by_server(reader)).startswith(b"HTTP/1.1 200 ")
    writer.close()


def test_trusted_proxies_are_not_capped() -> None:
    caps = ConnectionCaps(per_address=1, total=0, exempt=frozenset({"10.0.0.1"}))

    class Transport:
        def __init__(self, host: str) -> None:
            self.host = host
            self.written = b""

        def get_extra_info(self, name: str) -> Any:
            return (self.host, 1234)

        def write(self, data: bytes) -> None:
            self.written += data

        def close(self) -> None:
            pass

    handlers = [object() for _ in range(4)]
    assert all(caps.admit(h, Transport("10.0.0.1")) for h in handlers[:3])  # type: ignore[arg-type]
    assert caps.admit(handlers[3], Transport("192.0.2.7"))  # type: ignore[arg-type]
    over = Transport("192.0.2.7")
    assert not caps.admit(object(), over)  # type: ignore[arg-type]
    assert over.written.startswith(b"HTTP/1.1 429 ")
    caps.release(handlers[3])  # type: ignore[arg-type]
    assert caps.admit(object(), Transport("192.0.2.7"))  # type: ignore[arg-type]


async def test_sockets_that_never_authenticate_are_closed_authenticated_ones_stay(
    base: str,
) -> None:
    async with aiohttp.ClientSession() as session:
        silent = [
            await session.ws_connect(f"{base}/socket.io/?EIO=4&transport=websocket")
            for _ in range(5)
        ]
        agents = []
        for _ in range(10):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(
                base,
                namespaces=["/agent"],
                auth={"token": ADMIN_TOKEN},
                transports=["websocket"],
                wait_timeout=GRACE,
            )
            agents.append(client)

        async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> None:
            async with asyncio.timeout(GRACE):
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
                        await ws.send_str("3")  # it answers pings: only the deadline closes it

        for ws in silent:
            await until_closed(ws)
            assert ws.closed
        await asyncio.sleep(1.5)  # past the handshake deadline of the authenticated ones too
        assert all(a.connected for a in agents)
        await served(base)
        for client in agents:
            await client.disconnect()
