"""Customers' edits of messages they sent: the stored message takes the new text, is marked
edited (``edited_at``) and keeps every earlier text in ``edits``; agents hear ``message.edited``.

Idempotent: a redelivered edit (its ``edit_id`` already applied), an edit older than the one
shown (delivered late), or one that changes nothing is no change. An edit only ever changes a
message of the same contact in the same inbox. An edit of a message the hub never stored (sent
before the inbox existed, or its delivery lost) is returned as unknown: the caller stores it as
an ordinary message, so the customer's words are not lost.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hub.contracts.channel import InboxContext, MessageEdit
from hub.events import Actor, ActorKind, Event, MessageEdited, make_event
from hub.store.db import Conn
from hub.store.outbox import append_events

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class EditOutcome:
    edit: MessageEdit
    #: the edited message; ``None``: the hub has no such message of this sender
    message_id: str | None
    #: the message now shows this edit (``False``: a redelivery, late or empty edit)
    applied: bool


_ORIGINAL = """
SELECT m.id, m.conversation_id, m.content, m.edited_at, m.edits, m.sender_id
  FROM messages m
  JOIN contact_identities ci ON ci.contact_id = m.sender_id
 WHERE m.inbox_id = $1 AND m.provider_message_id = $2 AND m.direction = 'inbound'
   AND ci.account_id = $3 AND ci.channel = $4 AND ci.address = $5
   FOR UPDATE OF m"""


async def apply_edits(
    conn: Conn,
    *,
    inbox: InboxContext,
    edits: Sequence[MessageEdit],
    correlation_id: str | None = None,
) -> list[EditOutcome]:
    """Run inside a transaction; edits of one message apply in the order given."""
    outcomes: list[EditOutcome] = []
    events: list[Event[Any]] = []
    for edit in edits:
        row = await conn.fetchrow(
            _ORIGINAL,
            inbox.id,
            edit.provider_message_id,
            inbox.account_id,
            edit.sender.channel,
            edit.sender.address,
        )
        if row is None:
            outcomes.append(EditOutcome(edit, None, applied=False))
            continue
        history: list[dict[str, Any]] = list(row["edits"] or [])
        at = edit.edited_at or datetime.now(UTC)
        if (
            any(h.get("edit_id") == edit.edit_id for h in history)
            or (row["edited_at"] is not None and at < row["edited_at"])
            or edit.content == row["content"]
        ):
            log.info(
                "message edit already shown, late or changing nothing",
                extra={"inbox_id": inbox.id, "message_id": row["id"]},
            )
            outcomes.append(EditOutcome(edit, row["id"], applied=False))
            continue
        history.append(
            {
                "edit_id": edit.edit_id,
                "edited_at": at.isoformat(),
                "previous_content": row["content"],
            }
        )
        await conn.execute(
            """UPDATE messages SET content = $2, edited_at = $3, edits = $4, updated_at = now()
                WHERE id = $1""",
            row["id"],
            edit.content,
            at,
            history,
        )
        events.append(
            make_event(
                MessageEdited(
                    message_id=row["id"],
                    inbox_id=inbox.id,
                    content=edit.content,
                    previous_content=row["content"],
                    edited_at=at,
                ),
                account_id=inbox.account_id,
                conversation_id=row["conversation_id"],
                actor=Actor(ActorKind.CONTACT, row["sender_id"]),
                correlation_id=correlation_id,
            )
        )
        outcomes.append(EditOutcome(edit, row["id"], applied=True))
    if events:
        await append_events(conn, events)
    return outcomes
