"""A python-socketio agent client for the realtime tests."""

from __future__ import annotations

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
