"""A conversation the hub opens itself, towards an address: a rule's ``send_email`` writes to
someone who has not written in (an escalation mailbox, a manager). The address becomes (or is
found as) a contact with that identity, and its unresolved conversation in the inbox is reused or
a new one opened, so the message that follows goes out through the channel's delivery like any
agent's reply: queued, sent, its status on the timeline.

Both are announced in the same transaction (``contact.created`` when the contact is new,
``conversation.created`` when the conversation is), with the caller's actor and cause.
"""

from __future__ import annotations

from typing import Any

from hub.contracts.registry import get_channel
from hub.events import Actor, ContactCreated, Event, make_event
from hub.events.types import ConversationCreated, ConversationState, ConversationStatus, Identity
from hub.identities import normalise
from hub.ids import new_id
from hub.refusals import CodedRefusal
from hub.store.db import Conn
from hub.store.outbox import append_events


class OutboundRefused(CodedRefusal):
    """``not_found`` (404), otherwise 422: why no conversation can be opened."""


async def open_conversation(
    conn: Conn,
    *,
    account_id: str,
    inbox_id: str,
    address: str,
    actor: Actor,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> str:
    """Run inside a transaction; the id of the unresolved conversation with ``address`` in the
    inbox (opened when there is none)."""
    inbox = await conn.fetchrow(
        "SELECT channel, disabled_at FROM inboxes WHERE id = $1 AND account_id = $2",
        inbox_id,
        account_id,
    )
    if inbox is None:
        raise OutboundRefused("not_found", "no such inbox")
    if inbox["disabled_at"] is not None:
        raise OutboundRefused("inbox_disabled", "the inbox is disabled: nothing can be sent")
    adapter = get_channel(inbox["channel"])
    if adapter is None:
        raise OutboundRefused("not_found", "the inbox's channel is not installed")
    channel = adapter.manifest.identity_channel
    normalised = normalise(channel, address)
    if normalised is None:
        raise OutboundRefused("invalid_address", f"not a {channel} address: {address!r}")
    events: list[Event[Any]] = []
    contact_id = await conn.fetchval(
        """SELECT contact_id FROM contact_identities
            WHERE account_id = $1 AND channel = $2 AND address = $3""",
        account_id,
        channel,
        normalised,
    )
    if contact_id is None:
        contact_id = new_id()
        await conn.execute(
            "INSERT INTO contacts (id, account_id) VALUES ($1, $2)", contact_id, account_id
        )
        claimed = await conn.fetchval(
            """INSERT INTO contact_identities (account_id, channel, address, contact_id)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING contact_id""",
            account_id,
            channel,
            normalised,
            contact_id,
        )
        if claimed is None:  # another transaction took the address (and has committed)
            await conn.execute("DELETE FROM contacts WHERE id = $1", contact_id)
            contact_id = await conn.fetchval(
                """SELECT contact_id FROM contact_identities
                    WHERE account_id = $1 AND channel = $2 AND address = $3""",
                account_id,
                channel,
                normalised,
            )
            if contact_id is None:
                raise OutboundRefused("conflict", "the address is being claimed: try again")
        else:
            events.append(
                make_event(
                    ContactCreated(
                        contact_id=contact_id,
                        name=None,
                        identities=(Identity(channel=channel, address=normalised),),
                    ),
                    account_id=account_id,
                    conversation_id=None,
                    actor=actor,
                    correlation_id=correlation_id,
                    causation_id=causation_id,
                )
            )
    conversation_id = await conn.fetchval(
        """SELECT id FROM conversations
            WHERE inbox_id = $1 AND contact_id = $2 AND status <> 'resolved'""",
        inbox_id,
        contact_id,
    )
    if conversation_id is None:
        conversation_id = new_id()
        await conn.execute(
            """INSERT INTO conversations (id, account_id, inbox_id, contact_id)
               VALUES ($1, $2, $3, $4)""",
            conversation_id,
            account_id,
            inbox_id,
            contact_id,
        )
        events.append(
            make_event(
                ConversationCreated(
                    inbox_id=inbox_id,
                    contact_id=contact_id,
                    state=ConversationState(status=ConversationStatus.OPEN),
                ),
                account_id=account_id,
                conversation_id=conversation_id,
                actor=actor,
                correlation_id=correlation_id,
                causation_id=causation_id,
            )
        )
    await append_events(conn, events)
    return str(conversation_id)
