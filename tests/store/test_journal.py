"""The journal consumer writes each event once, also when a batch is delivered again."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from hub.bus import BusMessage
from hub.consumers.journal import Journal
from hub.events import ContactCreated, encode_event, make_event
from hub.events.envelope import SYSTEM
from hub.store.db import create_pool

pytestmark = pytest.mark.postgres


def message(n: int) -> BusMessage:
    event = make_event(
        ContactCreated(contact_id=f"c{n}", name="ශානි"),
        account_id="a",
        conversation_id=None,
        actor=SYSTEM,
    )
    return BusMessage("contacts", f"c{n}", encode_event(event), 0, n, {})


async def test_redelivered_batch_is_written_once(db: asyncpg.Connection[Any], db_dsn: str) -> None:
    pool = await create_pool(db_dsn, 2)
    journal = Journal(pool)
    first = [message(n) for n in range(5)]
    try:
        await journal.handle(first)
        await journal.handle([*first[2:], message(5)])  # overlapping redelivery plus one new
    finally:
        await pool.close()
    rows = await db.fetch("SELECT id, type, event->'payload'->>'name' AS name FROM event_log")
    assert len(rows) == 6
    assert {r["type"] for r in rows} == {"contact.created"}
    assert {r["name"] for r in rows} == {"ශානි"}
