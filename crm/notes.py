"""Notes on a contact: who wrote what, when. Adding one announces ``contact.updated`` (changed
``notes``) so open contact panels refresh."""

from __future__ import annotations

from hub.actions.contacts import ContactRefused
from hub.audit import actor_of
from hub.authz import Principal
from hub.events import Actor, ActorKind, ContactUpdated, make_event
from hub.events.types import Identity
from hub.ids import new_id
from hub.store.db import Conn
from hub.store.outbox import append_events


async def add_note(
    conn: Conn,
    *,
    principal: Principal,
    contact_id: str,
    content: str,
    correlation_id: str | None = None,
) -> str:
    row = await conn.fetchrow(
        """SELECT name FROM contacts
            WHERE id = $1 AND account_id = $2 AND merged_into IS NULL FOR SHARE""",
        contact_id,
        principal.account_id,
    )
    if row is None:
        raise ContactRefused("not_found", "no such contact")
    note_id = new_id()
    author_type, author_id = actor_of(principal)
    await conn.execute(
        """INSERT INTO contact_notes (id, account_id, contact_id, author_type, author_id, content)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        note_id,
        principal.account_id,
        contact_id,
        author_type,
        author_id,
        content,
    )
    identities = await conn.fetch(
        """SELECT channel, address FROM contact_identities WHERE contact_id = $1
            ORDER BY channel, address""",
        contact_id,
    )
    event = make_event(
        ContactUpdated(
            contact_id=contact_id,
            name=row["name"],
            changed=("notes",),
            identities=tuple(Identity(r["channel"], r["address"]) for r in identities),
        ),
        account_id=principal.account_id,
        conversation_id=None,
        actor=Actor(ActorKind.AGENT, principal.agent_id),
        correlation_id=correlation_id,
    )
    await append_events(conn, [event])
    return note_id
