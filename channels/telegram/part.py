"""Keeps every Telegram bot's webhook pointed at its inbox: ``setWebhook`` (the inbox's URL under
``HUB_PUBLIC_URL`` and its secret token) when an inbox is created, when the public URL, the
secret or the bot token changes, and once at each start (the hub cannot read the secret back to
compare). A part of the hub in the ``all`` and ``worker`` roles, looking every ``SYNC_EVERY``
seconds; a refusal (a wrong token) is logged, shown in ``/readyz`` and tried again later, backing
off to ``MAX_BACKOFF``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from channels._base import SendError
from channels.telegram.bot_api import set_webhook
from hub.store.reads import load_inbox
from hub.timers import BackgroundPart

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.contracts.channel import InboxContext

log = logging.getLogger(__name__)
SYNC_EVERY = 5.0
MAX_BACKOFF = 300.0


@dataclasses.dataclass
class _State:
    fingerprint: str
    ok: bool
    error: str | None = None
    failures: int = 0
    next_try: float = 0.0


def webhook_url(public_url: str, inbox_id: str) -> str:
    return f"{public_url.rstrip('/')}/webhooks/telegram/{inbox_id}"


def _fingerprint(url: str, inbox: InboxContext) -> str:
    """What, if changed, needs a new ``setWebhook`` (secrets hashed, never kept)."""
    secret = str(inbox.secrets.get("webhook_secret") or "")
    token = str(inbox.secrets.get("bot_token") or "")
    base = str(inbox.settings.get("api_base_url") or "")
    return hashlib.sha256("\x00".join((url, secret, token, base)).encode()).hexdigest()


class TelegramWebhooks(BackgroundPart):
    name = "telegram"

    def __init__(self) -> None:
        super().__init__()
        self.states: dict[str, _State] = {}

    def health(self) -> Mapping[str, Any]:
        if not self.states:
            return {}
        return {
            "telegram": {
                inbox_id: "registered" if s.ok else f"not registered: {s.error}"
                for inbox_id, s in sorted(self.states.items())
            }
        }

    async def run(self, hub: Hub) -> None:
        from hub.app import TRANSIENT

        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    await self.sync(hub, http)
                except TRANSIENT as exc:
                    log.warning("telegram: database unavailable", extra={"error": repr(exc)})
                await asyncio.sleep(SYNC_EVERY)

    async def sync(self, hub: Hub, http: aiohttp.ClientSession) -> None:
        public_url = hub.config.public_url
        rows = await hub.pool.fetch("SELECT id FROM inboxes WHERE channel = 'telegram'")
        wanted = {r["id"] for r in rows}
        for gone in [i for i in self.states if i not in wanted]:
            del self.states[gone]
        if not public_url:
            if rows:
                log.warning("telegram: set HUB_PUBLIC_URL so the bots' webhooks can be set")
            return
        now = time.monotonic()
        for inbox_id in sorted(wanted):
            inbox = await load_inbox(hub.pool, hub.box, inbox_id)
            if inbox is None:
                continue
            url = webhook_url(public_url, inbox_id)
            fingerprint = _fingerprint(url, inbox)
            state = self.states.get(inbox_id)
            unchanged = state is not None and state.fingerprint == fingerprint
            if unchanged and state is not None and (state.ok or now < state.next_try):
                continue
            await self._register(http, inbox, url, fingerprint, state)

    async def _register(
        self,
        http: aiohttp.ClientSession,
        inbox: InboxContext,
        url: str,
        fingerprint: str,
        before: _State | None,
    ) -> None:
        try:
            await set_webhook(http, inbox, url)
        except SendError as exc:
            failures = (before.failures if before is not None else 0) + 1
            wait = min(MAX_BACKOFF, SYNC_EVERY * 2 ** (failures - 1))
            self.states[inbox.id] = _State(
                fingerprint, False, f"{exc.code}: {exc.message}", failures, time.monotonic() + wait
            )
            log.warning(
                "telegram: setWebhook refused",
                extra={"inbox_id": inbox.id, "code": exc.code, "reason": exc.message},
            )
            return
        self.states[inbox.id] = _State(fingerprint, True)
        log.info("telegram: webhook set", extra={"inbox_id": inbox.id})


def telegram_of(hub: Hub) -> TelegramWebhooks | None:
    """The running Telegram part of a hub (tests and tools)."""
    part = hub.part(TelegramWebhooks.name)
    return part if isinstance(part, TelegramWebhooks) else None
