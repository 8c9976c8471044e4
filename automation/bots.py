"""Agent bots: an inbox can hand its new conversations to a bot before people see them.

The bot is an outgoing webhook subscription of the account plus an API token of its own (role
agent, scopes ``conversations:read`` and ``conversations:write``), both given when an
administrator attaches it to an inbox. While the bot holds a conversation (created in the inbox
after the bot was attached, not handed off yet), the ``agent-bots`` consumer records its
``conversation.created`` and every ``message.received`` as deliveries of the bot's subscription
(the same signed, retried, ordered sender as every outgoing webhook; the event id is the
delivery's key, so a subscription that also lists those event types gets each once), and
automatic assignment leaves the conversation alone. The bot answers through the API with its
token, and ``handoff`` moves the conversation to the human queue: assignment runs at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from automation.assignment import BOT_HELD, BOTS_HOLDING, assign
from automation.batching import LINGER
from automation.webhook_store import record_deliveries
from hub.actions.accounts import Refused, audit_object
from hub.actions.setup import hash_token
from hub.audit import Origin, record
from hub.authz import Permission, Principal
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.idempotency import claim
from hub.consumers.stream import StreamConsumer
from hub.contracts.presence import Presence
from hub.events.envelope import decode_head
from hub.events.types import CONVERSATIONS
from hub.ids import new_id
from hub.store.db import Conn

GROUP = "agent-bots"
#: the events of a held conversation the bot receives
BOT_EVENTS = ("conversation.created", "message.received")
BOT_SCOPES = sorted([Permission.CONVERSATIONS_READ.value, Permission.CONVERSATIONS_WRITE.value])

HELD = BOT_HELD


async def held_by_bot(conn: Conn, conversation_id: str) -> bool:
    return bool(await conn.fetchval(f"SELECT {HELD}", conversation_id))


@dataclasses.dataclass(frozen=True)
class InboxBot:
    inbox_id: str
    name: str
    webhook_id: str
    token_id: str
    created_at: datetime
    #: the bot's API token: only in the reply that made it
    token: str | None = None


_COLUMNS = "inbox_id, name, webhook_id, token_id, created_at"


async def get_bot(conn: Conn, account_id: str, inbox_id: str) -> InboxBot:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM inbox_bots WHERE inbox_id = $1 AND account_id = $2",
        inbox_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "the inbox has no bot")
    return InboxBot(**dict(row))


async def set_bot(
    conn: Conn,
    *,
    account_id: str,
    inbox_id: str,
    name: str,
    webhook_id: str,
    actor: Principal,
    origin: Origin,
) -> InboxBot:
    """Attach a bot to an inbox (its token is made now and shown once) or change its name and
    webhook (the token stays)."""
    if not await conn.fetchval(
        "SELECT 1 FROM inboxes WHERE id = $1 AND account_id = $2", inbox_id, account_id
    ):
        raise Refused("not_found", "not_found", "no such inbox")
    if not await conn.fetchval(
        "SELECT 1 FROM webhook_subscriptions WHERE id = $1 AND account_id = $2",
        webhook_id,
        account_id,
    ):
        raise Refused("invalid", "invalid_bot", "no such webhook", {"field": "webhook_id"})
    row = await conn.fetchrow(
        f"""UPDATE inbox_bots SET name = $3, webhook_id = $4
             WHERE inbox_id = $1 AND account_id = $2 RETURNING {_COLUMNS}""",
        inbox_id,
        account_id,
        name,
        webhook_id,
    )
    token = None
    if row is None:
        token = "hub_" + secrets.token_urlsafe(32)
        token_id = new_id()
        await conn.execute(
            """INSERT INTO api_tokens (id, account_id, name, role, token_hash, scopes,
                                       token_prefix)
               VALUES ($1, $2, $3, 'agent', $4, $5, $6)""",
            token_id,
            account_id,
            f"bot: {name}"[:200],
            hash_token(token),
            BOT_SCOPES,
            token[:8],
        )
        row = await conn.fetchrow(
            f"""INSERT INTO inbox_bots (inbox_id, account_id, name, webhook_id, token_id)
                VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
            inbox_id,
            account_id,
            name,
            webhook_id,
            token_id,
        )
    assert row is not None
    await audit_object(
        conn, "inbox", account_id, inbox_id, "inbox.bot_set", actor, origin, name=name,
        webhook_id=webhook_id, token_made=token is not None,
    )  # fmt: skip
    return dataclasses.replace(InboxBot(**dict(row)), token=token)


async def remove_bot(
    conn: Conn,
    presence: Presence,
    *,
    account_id: str,
    inbox_id: str,
    actor: Principal,
    origin: Origin,
) -> int:
    """Detach the bot (its token is revoked); the conversations it still held go to people
    (assignment runs on them). How many it held."""
    bot = await get_bot(conn, account_id, inbox_id)
    held = await conn.fetch(
        """SELECT c.id FROM conversations c
            WHERE c.inbox_id = $1 AND c.created_at >= $2 AND c.status IN ('open', 'pending')
              AND NOT EXISTS (SELECT 1 FROM bot_handoffs h WHERE h.conversation_id = c.id)
            ORDER BY c.created_at, c.id LIMIT 1000""",
        inbox_id,
        bot.created_at,
    )
    await conn.execute("DELETE FROM inbox_bots WHERE inbox_id = $1", inbox_id)
    await conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", bot.token_id)
    for r in held:
        await assign(conn, presence, r["id"])
    await audit_object(
        conn, "inbox", account_id, inbox_id, "inbox.bot_removed", actor, origin, held=len(held)
    )
    return len(held)


@dataclasses.dataclass(frozen=True)
class HandedOff:
    conversation_id: str
    handed_off_at: datetime
    assignee_id: str | None


async def handoff(
    conn: Conn, presence: Presence, *, principal: Principal, conversation_id: str, origin: Origin
) -> HandedOff:
    """Move a conversation from its bot to the human queue and run assignment on it (in the
    caller's transaction). Handing off again answers the first handoff."""
    account_id = principal.account_id
    row = await conn.fetchrow(
        "SELECT inbox_id FROM conversations WHERE id = $1 AND account_id = $2 FOR UPDATE",
        conversation_id,
        account_id,
    )
    if row is None or not principal.sees(row["inbox_id"]):
        raise Refused("not_found", "not_found", "no such conversation")
    done = await conn.fetchrow(
        "SELECT handed_off_at FROM bot_handoffs WHERE conversation_id = $1", conversation_id
    )
    if done is None:
        if not await held_by_bot(conn, conversation_id):
            raise Refused("conflict", "not_with_bot", "no bot holds this conversation")
        done = await conn.fetchrow(
            """INSERT INTO bot_handoffs (conversation_id, account_id, inbox_id, actor_id)
               VALUES ($1, $2, $3, $4) RETURNING handed_off_at""",
            conversation_id,
            account_id,
            row["inbox_id"],
            principal.agent_id,
        )
        await record(
            conn,
            account_id=account_id,
            actor=principal,
            action="conversation.handed_off",
            object_type="conversation",
            object_id=conversation_id,
            origin=origin,
            details={"inbox_id": row["inbox_id"]},
        )
        await assign(conn, presence, conversation_id)
    assert done is not None
    assignee = await conn.fetchval(
        "SELECT assignee_id FROM conversations WHERE id = $1", conversation_id
    )
    return HandedOff(conversation_id, done["handed_off_at"], assignee)


class BotFeeder:
    """The consumer recording a held conversation's events as deliveries to its bot."""

    def __init__(self, pool: asyncpg.Pool[Any], recorded: asyncio.Event) -> None:
        self._pool = pool
        self._recorded = recorded

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [await bus.subscribe(CONVERSATIONS, GROUP, self.handle, options)]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        heads = [
            (head, m)
            for m in batch
            if (head := decode_head(m.value)).type in BOT_EVENTS and head.conversation_id
        ]
        if not heads:
            return
        async with self._pool.acquire() as conn:
            # one statement (no transaction) for the batch: which of its conversations a bot
            # holds, usually none; the rest is claimed and recorded in one transaction
            held = await conn.fetch(
                BOTS_HOLDING, sorted({h.conversation_id or "" for h, _ in heads})
            )
            if not held:
                return
            bots = {r[0]: r[1] for r in held}
            mine = [(h, m) for h, m in heads if h.conversation_id in bots]
            async with conn.transaction():
                fresh = await claim(conn, GROUP, [h.id for h, _ in mine])
                rows = [
                    (
                        head.account_id, bots[head.conversation_id], head.id, head.id, head.type,
                        head.conversation_id or "", int(message.headers.get("seq", "0")),
                        message.value,
                    )
                    for head, message in mine
                    if head.id in fresh
                ]  # fmt: skip
                recorded = await record_deliveries(conn, rows) if rows else 0
        if recorded:
            self._recorded.set()


def bot_feeder_part(recorded: asyncio.Event) -> StreamConsumer:
    return StreamConsumer(
        GROUP, lambda hub: BotFeeder(hub.pool, recorded), max_batch=200, linger=LINGER
    )
