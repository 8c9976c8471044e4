"""Marking a conversation read by an agent: the read position only moves forward, and a change
is announced (``conversation.read``) so the agent's other devices and the unread counts follow."""

from __future__ import annotations

import dataclasses

from hub.actions.messages import MessageRefused, conversation_inbox
from hub.events import Actor, ActorKind, ConversationRead, make_event
from hub.store.db import Conn
from hub.store.outbox import append_events


@dataclasses.dataclass(frozen=True)
class ReadPosition:
    last_read_message_id: str | None
    changed: bool


async def mark_read(
    conn: Conn,
    *,
    account_id: str,
    agent_id: str,
    conversation_id: str,
    message_id: str | None,
    inboxes: frozenset[str] | None = None,
) -> ReadPosition:
    """Run inside a transaction. Without ``message_id``, up to the newest message."""
    inbox_id = await conversation_inbox(conn, account_id, conversation_id, inboxes=inboxes)
    if message_id is None:
        message_id = await conn.fetchval(
            "SELECT max(id) FROM messages WHERE conversation_id = $1", conversation_id
        )
        if message_id is None:
            return ReadPosition(None, changed=False)
    elif not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2)",
        message_id,
        conversation_id,
    ):
        raise MessageRefused("not_found", "no such message in this conversation")
    # ids are ULIDs: a later message has a greater id, so GREATEST keeps the position moving forward
    row = await conn.fetchrow(
        """INSERT INTO conversation_reads (account_id, agent_id, conversation_id,
                                           last_read_message_id)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (agent_id, conversation_id) DO UPDATE
              SET last_read_message_id = GREATEST(conversation_reads.last_read_message_id,
                                                  EXCLUDED.last_read_message_id),
                  read_at = now()
              WHERE EXCLUDED.last_read_message_id > conversation_reads.last_read_message_id
           RETURNING last_read_message_id""",
        account_id,
        agent_id,
        conversation_id,
        message_id,
    )
    if row is None:  # already read that far
        current = await conn.fetchval(
            """SELECT last_read_message_id FROM conversation_reads
                WHERE agent_id = $1 AND conversation_id = $2""",
            agent_id,
            conversation_id,
        )
        return ReadPosition(current, changed=False)
    event = make_event(
        ConversationRead(
            inbox_id=inbox_id,
            agent_id=agent_id,
            last_read_message_id=row["last_read_message_id"],
        ),
        account_id=account_id,
        conversation_id=conversation_id,
        actor=Actor(ActorKind.AGENT, agent_id),
    )
    await append_events(conn, [event])
    return ReadPosition(row["last_read_message_id"], changed=True)
