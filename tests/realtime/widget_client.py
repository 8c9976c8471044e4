"""A python-socketio web chat visitor, for the widget tests and the widget benchmark."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio

NAMESPACE = "/widget"


class Refused(Exception):
    def __init__(self, data: Any) -> None:
        super().__init__(str(data))
        # python-socketio hands over {"message", "data": {"code", "message"}}
        inner = data.get("data", data) if isinstance(data, dict) else None
        self.code = inner.get("code") if isinstance(inner, dict) else None


class Visitor:
    """Records what the server sends; ``connect`` raises :class:`Refused` with the code."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.items: list[dict[str, Any]] = []
        self.history: dict[str, Any] | None = None
        self.session: dict[str, Any] | None = None
        self.typing: list[bool] = []
        self.refusal: Any = None
        on = self.client.on
        on("events", self.items.extend, namespace=NAMESPACE)
        on("history", self._history, namespace=NAMESPACE)
        on("session", self._session, namespace=NAMESPACE)
        on("typing", lambda e: self.typing.append(e["on"]), namespace=NAMESPACE)
        on("connect_error", self._refused, namespace=NAMESPACE)

    def _history(self, data: dict[str, Any]) -> None:
        self.history = data

    def _session(self, data: dict[str, Any]) -> None:
        self.session = data

    def _refused(self, data: Any) -> None:
        self.refusal = data

    @property
    def last_seq(self) -> int | None:
        seqs = [i["seq"] for i in self.items]
        if self.history is not None:
            seqs.append(self.history["head"])
        return max(seqs) if seqs else None

    async def connect(self, url: str, origin: str | None, **auth: Any) -> None:
        headers = {"Origin": origin} if origin else {}
        try:
            await self.client.connect(
                url,
                namespaces=[NAMESPACE],
                auth={k: v for k, v in auth.items() if v is not None},
                headers=headers,
                transports=["websocket"],
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError as exc:
            for _ in range(100):  # the refusal's handler may run just after
                if self.refusal is not None:
                    break
                await asyncio.sleep(0.01)
            raise Refused(self.refusal) from exc
        async with asyncio.timeout(10):  # the session message comes first
            while self.session is None:
                await asyncio.sleep(0.01)

    async def call(self, event: str, data: Any) -> dict[str, Any]:
        reply: dict[str, Any] = await self.client.call(event, data, namespace=NAMESPACE, timeout=10)
        return reply

    async def say(self, content: str, client_id: str) -> dict[str, Any]:
        return await self.call("message", {"content": content, "client_id": client_id})

    def messages(self) -> list[dict[str, Any]]:
        return [i["message"] for i in self.items if i["type"] == "message"]

    async def wait_until(self, condition: Callable[[], bool], within: float = 10) -> None:
        async with asyncio.timeout(within):
            while not condition():
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.client.disconnect()
