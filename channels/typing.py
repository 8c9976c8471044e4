"""Agents' typing shown to customers: installed as the hub's typing listener, it finds the
conversation's inbox and contact and asks the channel to show it (Messenger's and Instagram's
``sender_action: typing_on``, Telegram's ``sendChatAction``), for channels with the ``typing``
capability. Only the start of typing is shown (the providers clear it by themselves after a few
seconds or at the next message), at most once every ``EVERY`` seconds per conversation. Runs in
every role that hears agents' sockets; each call is a task of its own, awaited at stop, and a
refusal is only logged: typing is a courtesy, never worth a retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from hub.contracts.channel import Capability, SendError
from hub.contracts.part import Layer
from hub.contracts.registry import get_channel
from hub.contracts.typing import NobodyListens
from hub.store.reads import load_inbox

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)
EVERY = 4.0
TIMEOUT = aiohttp.ClientTimeout(total=5, sock_connect=3)


class TypingRelay:
    name = "channel_typing"
    layer: Layer = "shared"
    roles = frozenset({"all", "gateway"})

    def __init__(self) -> None:
        self._hub: Hub | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[str, float] = {}
        self.shown = 0

    async def start(self, hub: Hub) -> None:
        self._hub = hub
        self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        hub.typing = self

    async def stop(self) -> None:
        if self._hub is not None:
            self._hub.typing = NobodyListens()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def health(self) -> Mapping[str, Any]:
        return {}

    def agent_typing(self, account_id: str, conversation_id: str, on: bool) -> None:
        if not on or self._hub is None:
            return
        now = time.monotonic()
        if now - self._last.get(conversation_id, -EVERY) < EVERY:
            return
        self._last[conversation_id] = now
        if len(self._last) > 10_000:  # forget the oldest conversations
            for key in sorted(self._last, key=self._last.__getitem__)[:5_000]:
                del self._last[key]
        task = asyncio.create_task(self._show(account_id, conversation_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _show(self, account_id: str, conversation_id: str) -> None:
        hub, http = self._hub, self._http
        assert hub is not None and http is not None
        try:
            row = await hub.pool.fetchrow(
                """SELECT c.inbox_id, c.contact_id, i.channel FROM conversations c
                     JOIN inboxes i ON i.id = c.inbox_id
                    WHERE c.id = $1 AND c.account_id = $2""",
                conversation_id,
                account_id,
            )
            adapter = get_channel(row["channel"]) if row is not None else None
            if row is None or adapter is None:
                return
            if Capability.TYPING not in adapter.manifest.capabilities:
                return
            address = await hub.pool.fetchval(
                """SELECT address FROM contact_identities WHERE contact_id = $1 AND channel = $2
                    ORDER BY created_at LIMIT 1""",
                row["contact_id"],
                adapter.manifest.identity_channel,
            )
            inbox = await load_inbox(hub.pool, hub.box, row["inbox_id"])
            if address is None or inbox is None:
                return
            await adapter.typing(inbox, address, http)
            self.shown += 1
        except (SendError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info(
                "typing not shown to the customer",
                extra={"conversation_id": conversation_id, "reason": f"{type(exc).__name__}"},
            )
