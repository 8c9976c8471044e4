"""What a provider reports the business did outside the hub, and what it says about senders.

- **Echoes**: a message the business sent to a contact from somewhere else (the Facebook page's
  own inbox, the Instagram app, another tool): stored once as an outgoing message, already
  ``sent``, on the contact's latest conversation in the inbox, so agents see the whole exchange.
  It is never a customer message and never sent again (only ``queued`` messages are delivered).
  An echo to someone who never wrote to the inbox has no conversation to land in and is skipped.
- **Watermarks**: "everything sent to this contact up to T was delivered / read" becomes a status
  report for each such message the hub sent (Messenger names no messages in a read report).
- **Profiles**: a provider's picture of a new sender is kept on the contact (its name already
  came with the first message).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence

from hub.contracts.channel import InboundMessage, InboxContext, StatusUpdate, Watermark
from hub.events import (
    Actor,
    ActorKind,
    ContactUpdated,
    MessageCreated,
    MessageStatus,
    make_event,
)
from hub.events.types import Identity
from hub.ids import new_id
from hub.store.db import Conn
from hub.store.outbox import append_events

log = logging.getLogger(__name__)

#: the attribute a contact's provider picture is kept under
PICTURE_ATTRIBUTE = "avatar_url"


@dataclasses.dataclass(frozen=True, slots=True)
class EchoOutcome:
    provider_message_id: str
    #: the stored message; ``None`` when skipped (no conversation with the contact)
    message_id: str | None
    duplicate: bool


def _lock_key(inbox_id: str, provider_message_id: str) -> int:
    digest = hashlib.blake2b(
        f"echo\x00{inbox_id}\x00{provider_message_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


async def record_echoes(
    conn: Conn,
    *,
    inbox: InboxContext,
    echoes: Sequence[InboundMessage],
    correlation_id: str | None = None,
) -> list[EchoOutcome]:
    """Run inside a transaction. Idempotent on (inbox, provider message id): a redelivered echo,
    or the echo of a message the hub itself sent, finds the stored message."""
    outcomes: list[EchoOutcome] = []
    actor = Actor(ActorKind.INTEGRATION, inbox.channel)
    for echo in sorted(echoes, key=lambda e: _lock_key(inbox.id, e.provider_message_id)):
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", _lock_key(inbox.id, echo.provider_message_id)
        )
    events = []
    for echo in echoes:
        stored = await conn.fetchval(
            "SELECT id FROM messages WHERE inbox_id = $1 AND provider_message_id = $2",
            inbox.id,
            echo.provider_message_id,
        )
        if stored is not None:
            outcomes.append(EchoOutcome(echo.provider_message_id, stored, duplicate=True))
            continue
        conversation_id = await conn.fetchval(
            """SELECT c.id FROM contact_identities ci
                 JOIN conversations c ON c.contact_id = ci.contact_id AND c.inbox_id = $4
                WHERE ci.account_id = $1 AND ci.channel = $2 AND ci.address = $3
                ORDER BY (c.status <> 'resolved') DESC, c.created_at DESC
                LIMIT 1
                FOR UPDATE OF c""",
            inbox.account_id,
            echo.sender.channel,
            echo.sender.address,
            inbox.id,
        )
        if conversation_id is None:
            log.info(
                "echo of a message to someone without a conversation skipped",
                extra={"inbox_id": inbox.id, "provider_message_id": echo.provider_message_id},
            )
            outcomes.append(EchoOutcome(echo.provider_message_id, None, duplicate=False))
            continue
        message_id = new_id()
        await conn.execute(
            """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction,
                                     sender_type, content, content_type, attachments,
                                     provider_message_id, status, sent_at)
               VALUES ($1, $2, $3, $4, 'outbound', 'integration', $5, $6, $7, $8, 'sent', $9)""",
            message_id,
            inbox.account_id,
            conversation_id,
            inbox.id,
            echo.content,
            echo.content_type,
            list(echo.attachments),
            echo.provider_message_id,
            echo.sent_at,
        )
        if echo.files:
            await conn.executemany(
                """INSERT INTO media (key, account_id, message_id, filename, content_type, size,
                                      sha256)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                [
                    (
                        f.key,
                        inbox.account_id,
                        message_id,
                        f.filename,
                        f.content_type,
                        f.size,
                        f.sha256,
                    )
                    for f in echo.files
                ],
            )
        await conn.execute(
            """UPDATE conversations SET messages_count = messages_count + 1,
                      last_activity_at = now(), updated_at = now()
                WHERE id = $1""",
            conversation_id,
        )
        events.append(
            make_event(
                MessageCreated(
                    message_id=message_id,
                    inbox_id=inbox.id,
                    sender_id=None,
                    content=echo.content,
                    content_type=echo.content_type,
                    attachments=echo.attachments,
                    status=MessageStatus.SENT,
                ),
                account_id=inbox.account_id,
                conversation_id=conversation_id,
                actor=actor,
                correlation_id=correlation_id,
            )
        )
        outcomes.append(EchoOutcome(echo.provider_message_id, message_id, duplicate=False))
    if events:
        await append_events(conn, events)
    return outcomes


async def watermark_updates(
    conn: Conn, *, inbox: InboxContext, channel: str, watermarks: Sequence[Watermark]
) -> list[StatusUpdate]:
    """A status report for each message the hub sent the contact up to the watermark that has
    not reached that status yet (``channel``: the contact identity channel)."""
    updates: list[StatusUpdate] = []
    for mark in watermarks:
        rows = await conn.fetch(
            """SELECT m.provider_message_id FROM contact_identities ci
                 JOIN conversations c ON c.contact_id = ci.contact_id AND c.inbox_id = $4
                 JOIN messages m ON m.conversation_id = c.id
                WHERE ci.account_id = $1 AND ci.channel = $2 AND ci.address = $3
                  AND m.direction = 'outbound' AND NOT m.private
                  AND m.provider_message_id IS NOT NULL
                  AND m.status = ANY($6::text[])
                  AND coalesce(m.sent_at, m.created_at) <= $5
                ORDER BY m.id""",
            inbox.account_id,
            channel,
            mark.address,
            inbox.id,
            mark.until,
            ["sent"] if mark.status == MessageStatus.DELIVERED else ["sent", "delivered"],
        )
        updates += [
            StatusUpdate(r["provider_message_id"], mark.status, mark.provider_status) for r in rows
        ]
    return updates


async def remember_picture(
    conn: Conn,
    *,
    inbox: InboxContext,
    contact_id: str,
    picture_url: str,
    correlation_id: str | None = None,
) -> bool:
    """Keep a provider's picture of a contact, unless it already has one; True if kept."""
    row = await conn.fetchrow(
        """UPDATE contacts
              SET attributes = attributes || jsonb_build_object($3::text, $4::text),
                  updated_at = now()
            WHERE id = $1 AND account_id = $2 AND NOT attributes ? $3
        RETURNING name""",
        contact_id,
        inbox.account_id,
        PICTURE_ATTRIBUTE,
        picture_url,
    )
    if row is None:
        return False
    identities = await conn.fetch(
        "SELECT channel, address FROM contact_identities WHERE contact_id = $1 ORDER BY channel",
        contact_id,
    )
    event = make_event(
        ContactUpdated(
            contact_id=contact_id,
            name=row["name"],
            changed=("attributes",),
            identities=tuple(Identity(r["channel"], r["address"]) for r in identities),
        ),
        account_id=inbox.account_id,
        conversation_id=None,
        actor=Actor(ActorKind.INTEGRATION, inbox.channel),
        correlation_id=correlation_id,
    )
    await append_events(conn, [event])
    return True
