"""The status action against the database: interrupted sends, reused provider ids, reports on
inbound messages."""

from __future__ import annotations

import asyncio

import pytest

from channels._base import StatusUpdate
from hub.actions.message_status import (
    INTERRUPTED,
    apply_status_updates,
    fail_interrupted,
    record_sent,
)
from hub.actions.setup import create_inbox
from hub.app import Hub
from hub.events import MessageStatus
from hub.ids import new_id
from tests.channels.conformance import status_events

pytestmark = pytest.mark.postgres


async def _setup(hub: Hub) -> tuple[str, str]:
    """An API inbox with one conversation; (inbox id, conversation id)."""
    async with hub.pool.acquire() as conn:
        inbox = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name="Shop"
        )
        contact, conversation = new_id(), new_id()
        await conn.execute(
            "INSERT INTO contacts (id, account_id) VALUES ($1, $2)", contact, hub.account_id
        )
        await conn.execute(
            """INSERT INTO conversations (id, account_id, inbox_id, contact_id)
               VALUES ($1, $2, $3, $4)""",
            conversation,
            hub.account_id,
            inbox.id,
            contact,
        )
    return inbox.id, conversation


async def _message(
    hub: Hub,
    inbox: str,
    conversation: str,
    *,
    status: str = "queued",
    direction: str = "outbound",
    started: str | None = None,
    pmid: str | None = None,
) -> str:
    message_id = new_id()
    await hub.pool.execute(
        f"""INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction,
                                  sender_type, content, status, provider_message_id,
                                  delivery_started_at)
            VALUES ($1, $2, $3, $4, $5, 'agent', 'x', $6, $7, {started or "NULL"})""",
        message_id,
        hub.account_id,
        conversation,
        inbox,
        direction,
        status,
        pmid,
    )
    return message_id


async def test_a_send_interrupted_long_ago_is_failed_once(hub: Hub) -> None:
    inbox, conversation = await _setup(hub)
    old = await _message(hub, inbox, conversation, started="now() - interval '20 minutes'")
    recent = await _message(hub, inbox, conversation, started="now()")
    untouched = await _message(hub, inbox, conversation)
    for _ in range(2):
        async with hub.pool.acquire() as conn, conn.transaction():
            await fail_interrupted(conn, older_than_seconds=600)
    rows = {
        r["id"]: (r["status"], r["error_code"])
        for r in await hub.pool.fetch("SELECT id, status, error_code FROM messages")
    }
    assert rows[old] == ("failed", INTERRUPTED)
    assert rows[recent] == ("queued", None) and rows[untouched] == ("queued", None)
    events = await status_events(hub, old)
    assert [e["payload"]["error_code"] for e in events] == [INTERRUPTED]
    await asyncio.sleep(0.2)
    assert len(await status_events(hub, old)) == 1


async def test_a_reused_provider_id_is_not_recorded_twice(hub: Hub) -> None:
    inbox, conversation = await _setup(hub)
    first = await _message(hub, inbox, conversation)
    second = await _message(hub, inbox, conversation)
    async with hub.pool.acquire() as conn, conn.transaction():
        await record_sent(conn, message_id=first, provider_message_id="cust-1", channel="api")
        outcome = await record_sent(
            conn, message_id=second, provider_message_id="cust-1", channel="api"
        )
    assert outcome.changed and outcome.status == MessageStatus.SENT
    rows = await hub.pool.fetch("SELECT id, status, provider_message_id FROM messages ORDER BY id")
    assert {r["id"]: r["provider_message_id"] for r in rows} == {first: "cust-1", second: None}
    assert {r["status"] for r in rows} == {"sent"}


async def test_reports_never_touch_inbound_messages(hub: Hub) -> None:
    inbox, conversation = await _setup(hub)
    inbound = await _message(
        hub, inbox, conversation, status="received", direction="inbound", pmid="in-1"
    )
    async with hub.pool.acquire() as conn, conn.transaction():
        outcomes = await apply_status_updates(
            conn,
            inbox_id=inbox,
            channel="api",
            updates=[StatusUpdate("in-1", MessageStatus.FAILED, "failed", "x", "y")],
        )
    assert not outcomes[0].changed
    assert await hub.pool.fetchval("SELECT status FROM messages WHERE id = $1", inbound) == (
        "received"
    )
