"""Agent sockets for the fault runner: python-socketio clients that dedupe by ``seq`` and reconnect
with ``last_seq`` after a cut, and a raw WebSocket client that stops reading (the slow client)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import socketio


class StreamAgent:
    """One agent socket kept connected: every ``events`` item is deduped by ``seq`` (as the
    protocol says a client must), ``message.received`` provider ids are counted after dedupe."""

    def __init__(self, base: str, token: str, name: str) -> None:
        self.base = base
        self.token = token
        self.name = name
        self.last_seq = 0  # a fresh hub: everything after 0 is what the run produced
        self.received: Counter[str] = Counter()
        self.dropped_by_seq = 0  # items deduped away (a reconnect race), not errors
        self.reconnects = 0
        self.resyncs: list[dict[str, Any]] = []
        self.client: socketio.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = False
        self._http: aiohttp.ClientSession | None = None

    def take(self, batch: list[dict[str, Any]]) -> None:
        for item in batch:
            seq = int(item["seq"])
            if seq <= self.last_seq:
                self.dropped_by_seq += 1
                continue
            self.last_seq = seq
            if item["type"] == "message.received":
                self.received[item["event"]["payload"]["provider_message_id"]] += 1

    async def _connect_once(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        client = socketio.AsyncClient(reconnection=False, http_session=self._http)
        client.on("events", self.take, namespace="/agent")
        client.on("resync", self.resyncs.append, namespace="/agent")
        await client.connect(
            self.base,
            namespaces=["/agent"],
            auth={"token": self.token, "last_seq": self.last_seq},
            transports=["websocket"],
            wait_timeout=5,
        )
        self.client = client

    async def start(self) -> None:
        await self._connect_once()
        self._task = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        while not self._stop:
            await asyncio.sleep(0.1)
            if self.client is not None and self.client.connected:
                continue
            if self.client is not None:
                with contextlib.suppress(Exception):
                    await self.client.disconnect()
                self.client = None
            try:
                await self._connect_once()
                self.reconnects += 1
            except Exception:
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        self._stop = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None and self.client.connected:
            with contextlib.suppress(Exception):
                await self.client.disconnect()
        if self._http is not None:
            await self._http.close()


class SilentSocket:
    """A raw Engine.IO WebSocket on a tiny receive buffer that reads the first ``events`` batch
    and then nothing: the hub must cut it off without holding anyone else back."""

    def __init__(self, base: str, token: str) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.batches: list[list[dict[str, Any]]] = []

    async def open(self, last_seq: int = 0) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        self.writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"no upgrade: {head!r}")
        opened = await self._frame()
        if not opened.startswith("0"):
            raise RuntimeError(f"no Engine.IO open packet: {opened!r}")
        auth = orjson.dumps({"token": self.token, "last_seq": last_seq}).decode()
        self._send(f"40/agent,{auth}")

    def _send(self, text: str) -> None:
        assert self.writer is not None
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def _frame(self) -> str:
        assert self.reader is not None
        data = b""
        while True:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            data += await self.reader.readexactly(n)
            if b0 & 0x80:
                return data.decode()

    async def read_until_events(self) -> list[dict[str, Any]]:
        """Read (answering pings) until the first ``events`` batch; then stop reading for good."""
        while True:
            text = await self._frame()
            if text == "2":
                self._send("3")
            elif text.startswith('42/agent,["events"'):
                name, batch = orjson.loads(text[len("42/agent,") :])
                assert name == "events"
                self.batches.append(batch)
                return list(batch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
