"""Agent messages: a reply to the contact (stored as ``queued`` until a channel delivers it) or a
private note (never delivered, ``sent`` once stored). One action for REST and sockets alike.

Idempotent on the client's ``client_id``: sending the same key again returns the stored message.
"""

from __future__ import annotations

import dataclasses

from hub.events import Actor, ActorKind, MessageCreated, MessageStatus, make_event
from hub.ids import new_id
from hub.store.db import Conn
from hub.store.outbox import append_events

MAX_CONTENT = 65_536


class MessageRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def conversation_inbox(
    conn: Conn,
    account_id: str,
    conversation_id: str,
    *,
    inboxes: frozenset[str] | None = None,
    lock: bool = False,
) -> str:
    """The inbox of an account's conversation (row-locked with ``lock``), or ``not_found`` —
    also when it is in an inbox outside ``inboxes`` (the caller's, ``None``: all)."""
    inbox_id: str | None = await conn.fetchval(
        "SELECT inbox_id FROM conversations WHERE id = $1 AND account_id = $2"
        + (" FOR UPDATE" if lock else ""),
        conversation_id,
        account_id,
    )
    if inbox_id is None or (inboxes is not None and inbox_id not in inboxes):
        raise MessageRefused("not_found", "no such conversation")
    return inbox_id


@dataclasses.dataclass(frozen=True)
class AgentMessage:
    id: str
    conversation_id: str
    status: str
    private: bool
    duplicate: bool


async def create_agent_message(
    conn: Conn,
    *,
    account_id: str,
    agent_id: str,
    conversation_id: str,
    content: str,
    private: bool,
    client_id: str | None,
    correlation_id: str | None = None,
    inboxes: frozenset[str] | None = None,
) -> AgentMessage:
    """Run inside a transaction; :class:`MessageRefused` for anything the caller got wrong."""
    if not content.strip():
        raise MessageRefused("empty_message", "content must not be empty")
    if len(content) > MAX_CONTENT:
        raise MessageRefused("content_too_long", f"content is longer than {MAX_CONTENT}")
    inbox_id = await conversation_inbox(
        conn, account_id, conversation_id, inboxes=inboxes, lock=True
    )
    if client_id is not None:
        existing = await conn.fetchrow(
            """SELECT id, conversation_id, status, private FROM messages
                WHERE account_id = $1 AND client_message_id = $2""",
            account_id,
            client_id,
        )
        if existing is not None:
            return AgentMessage(
                existing["id"],
                existing["conversation_id"],
                existing["status"],
                existing["private"],
                duplicate=True,
            )
    status = MessageStatus.SENT if private else MessageStatus.QUEUED
    message_id = new_id()
    await conn.execute(
        """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction, private,
                                 sender_type, sender_id, content, status, client_message_id)
           VALUES ($1, $2, $3, $4, 'outbound', $5, 'agent', $6, $7, $8, $9)""",
        message_id,
        account_id,
        conversation_id,
        inbox_id,
        private,
        agent_id,
        content,
        status.value,
        client_id,
    )
    await conn.execute(
        """UPDATE conversations SET messages_count = messages_count + 1,
                  last_activity_at = now(), updated_at = now()
            WHERE id = $1""",
        conversation_id,
    )
    event = make_event(
        MessageCreated(
            message_id=message_id,
            inbox_id=inbox_id,
            sender_id=agent_id,
            content=content,
            private=private,
            status=status,
        ),
        account_id=account_id,
        conversation_id=conversation_id,
        actor=Actor(ActorKind.AGENT, agent_id),
        correlation_id=correlation_id,
    )
    await append_events(conn, [event])
    return AgentMessage(message_id, conversation_id, status.value, private, duplicate=False)
