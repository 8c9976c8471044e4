"""A python-socketio agent client for the realtime tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio

TOKEN = "test-bootstrap-token"


async def agent_collecting(
    server: str, event_type: str
) -> tuple[socketio.AsyncClient, list[dict[str, Any]]]:
    """A connected agent socket and the list it fills with events of ``event_type``."""
    client = socketio.AsyncClient(reconnection=False)
    seen: list[dict[str, Any]] = []

    def on_events(batch: list[dict[str, Any]]) -> None:
        seen.extend(item for item in batch if item["type"] == event_type)

    client.on("events", on_events, namespace="/agent")
    await client.connect(
        server,
        namespaces=["/agent"],
        auth={"token": TOKEN},
        transports=["websocket"],
        wait_timeout=10,
    )
    return client, seen


class Agent:
    """A python-socketio agent client that records what it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[dict[str, Any]] = []
        self.resyncs: list[dict[str, Any]] = []
        self.presence: dict[str, str] = {}  # as this agent last heard it
        self.client.on("events", self.events.extend, namespace="/agent")
        self.client.on("resync", self.resyncs.append, namespace="/agent")
        self.client.on("presence_list", self.presence.update, namespace="/agent")
        self.client.on("presence", self._presence, namespace="/agent")

    def _presence(self, data: dict[str, str]) -> None:
        self.presence[data["agent_id"]] = data["status"]

    async def connect(self, url: str, **auth: Any) -> None:
        await self.client.connect(
            url, namespaces=["/agent"], auth=auth, transports=["websocket"], wait_timeout=10
        )

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]

    async def wait_for(self, count: int, within: float = 10) -> None:
        await self.wait_until(lambda: len(self.events) >= count, within)

    async def wait_until(self, condition: Callable[[], bool], within: float = 10) -> None:
        async with asyncio.timeout(within):
            while not condition():
                await asyncio.sleep(0.02)
