"""The IMAP readers of the email inboxes, as a part of the hub (a source, in the ``all`` and
``worker`` roles): one reader task per email inbox with an ``imap_host``, kept in step with the
database every ``SYNC_EVERY`` seconds (inboxes created, changed or deleted while running).

Several worker processes may run it; each mail is still ingested once (ingest is idempotent on
the Message-ID, and the cursor only moves forward), but one worker per deployment is enough.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hub.store.reads import load_inbox
from hub.timers import BackgroundPart

if TYPE_CHECKING:
    from channels.email.imap import MailboxReader
    from hub.app import Hub

log = logging.getLogger(__name__)
SYNC_EVERY = 5.0


class EmailPart(BackgroundPart):
    name = "email"

    def __init__(self) -> None:
        super().__init__()
        self.readers: dict[str, MailboxReader] = {}

    async def stop(self) -> None:
        await super().stop()
        for reader in list(self.readers.values()):
            await reader.stop()
        self.readers.clear()

    def health(self) -> Mapping[str, Any]:
        if not self.readers:
            return {}
        return {"email": {inbox_id: r.status() for inbox_id, r in sorted(self.readers.items())}}

    async def run(self, hub: Hub) -> None:
        from hub.app import TRANSIENT

        while True:
            try:
                await self.sync(hub)
            except TRANSIENT as exc:
                log.warning("email: database unavailable", extra={"error": repr(exc)})
            await asyncio.sleep(SYNC_EVERY)

    async def sync(self, hub: Hub) -> None:
        """Start, restart and stop readers to match the email inboxes in the database."""
        from channels.email.imap import MailboxReader

        rows = await hub.pool.fetch(
            """SELECT id FROM inboxes
                WHERE channel = 'email' AND disabled_at IS NULL
                  AND coalesce(settings->>'imap_host', '') <> ''"""
        )
        wanted = {}
        for row in rows:
            inbox = await load_inbox(hub.pool, hub.box, row["id"])
            if inbox is not None:
                wanted[inbox.id] = inbox
        for inbox_id in [i for i in self.readers if i not in wanted]:
            await self.readers.pop(inbox_id).stop()
        for inbox_id, inbox in wanted.items():
            running = self.readers.get(inbox_id)
            if running is not None and running.inbox == inbox:
                continue
            if running is not None:
                await running.stop()
            reader = MailboxReader(hub, inbox)
            self.readers[inbox_id] = reader
            reader.start()


def email_of(hub: Hub) -> EmailPart | None:
    """The running email part of a hub (tests and tools)."""
    part = hub.part(EmailPart.name)
    return part if isinstance(part, EmailPart) else None
