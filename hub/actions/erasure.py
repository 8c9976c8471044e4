"""Erasure of a person's data (a data-protection request), in one transaction.

What goes: the content of every message in the person's conversations (text, attachments,
templates, provider error texts, email subjects), every stored file of them (rows and bytes), their
notes, their identities (so a new message from the same address starts a new contact instead of
re-matching the erased one), the contact's name, attributes and company, the numbers of their
calls, and the same content in every copy of the events the hub keeps: ``event_log``,
``realtime_events`` (and its inbox-list context), the ``outbox`` rows not yet relayed and the
bodies of outgoing webhook deliveries, and the PostgreSQL archive's documents of the person (raw
webhooks, profile). ``hub_erase_event`` (migration 0031) blanks an event's
personal fields and keeps its shape, so every consumer still decodes it.

What stays: the contact row (anonymised, ``erased_at`` set) and its conversations and message
rows without content, so counts and reports stay whole; an audit entry with who, when and how
much was erased. A ``contact.erased`` event tells the consumers that keep copies (analytics, AI,
archives) to forget too; the journal re-blanks any event of those conversations that it logs
after the erasure.
"""

from __future__ import annotations

from typing import Any

from hub import audit
from hub.actions.contacts import ContactRefused
from hub.authz import Principal
from hub.events import Actor, ActorKind, make_event
from hub.events.types import ContactErased
from hub.media import MediaStore
from hub.store.db import Conn
from hub.store.outbox import append_events

#: event rows of the contact itself (contact.created / updated / merged carry names, identities)
_CONTACT_EVENT = """conversation_id IS NULL AND type LIKE 'contact.%'
                    AND (event -> 'payload' ->> 'contact_id' = ANY($2::text[])
                         OR event -> 'payload' ->> 'merged_contact_id' = ANY($2::text[]))"""


async def scrub_event_copies(
    conn: Conn, account_id: str, contact_ids: list[str], conversation_ids: list[str]
) -> dict[str, int]:
    """Blank the person's content in every stored copy of an event; how many rows of each."""
    keys = [*conversation_ids, *contact_ids]
    logged = await conn.fetchval(
        f"""WITH s AS (
               UPDATE event_log SET event = hub_erase_event(event::jsonb)::json
                WHERE account_id = $1
                  AND (conversation_id = ANY($3::text[]) OR ({_CONTACT_EVENT}))
               RETURNING 1)
            SELECT count(*) FROM s""",
        account_id,
        contact_ids,
        conversation_ids,
    )
    replay = await conn.fetchval(
        f"""WITH s AS (
               UPDATE realtime_events
                  SET event = hub_erase_event(event::jsonb)::json,
                      context = CASE WHEN context IS NULL THEN NULL
                                ELSE jsonb_set(context::jsonb, '{{conversation,contact_name}}',
                                               'null'::jsonb, false)::json END
                WHERE account_id = $1
                  AND (conversation_id = ANY($3::text[]) OR ({_CONTACT_EVENT}))
               RETURNING 1)
            SELECT count(*) FROM s""",
        account_id,
        contact_ids,
        conversation_ids,
    )
    pending = await conn.fetchval(
        """WITH s AS (
               UPDATE outbox
                  SET payload = convert_to(
                        hub_erase_event(convert_from(payload, 'UTF8')::jsonb)::text, 'UTF8')
                WHERE key = ANY($1::text[])
               RETURNING 1)
            SELECT count(*) FROM s""",
        keys,
    )
    webhooks = await conn.fetchval(
        """WITH s AS (
               UPDATE webhook_deliveries
                  SET body = convert_to(
                        hub_erase_event(convert_from(body, 'UTF8')::jsonb)::text, 'UTF8')
                WHERE account_id = $1 AND order_key = ANY($2::text[])
               RETURNING 1)
            SELECT count(*) FROM s""",
        account_id,
        keys,
    )
    return {
        "event_log": logged,
        "realtime_events": replay,
        "outbox": pending,
        "webhook_deliveries": webhooks,
    }


async def erase_contact(
    conn: Conn,
    *,
    principal: Principal,
    contact_id: str,
    store: MediaStore,
    origin: audit.Origin,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """Run inside a transaction; what was erased (the counts the audit entry keeps).
    ``not_found`` for a contact the account does not have, ``already_erased`` for a second
    request, ``conflict`` for a merged contact's id (erase its survivor)."""
    row = await conn.fetchrow(
        """SELECT merged_into, erased_at FROM contacts
            WHERE id = $1 AND account_id = $2 FOR UPDATE""",
        contact_id,
        principal.account_id,
    )
    if row is None:
        raise ContactRefused("not_found", "no such contact")
    if row["merged_into"] is not None:
        raise ContactRefused("conflict", "the contact was merged into another one; erase that")
    if row["erased_at"] is not None:
        raise ContactRefused("already_erased", "the contact was erased already")
    merged = await conn.fetch(
        "SELECT id FROM contacts WHERE merged_into = $1 ORDER BY id FOR UPDATE", contact_id
    )
    contact_ids = [contact_id, *(r["id"] for r in merged)]
    # the conversations locked first: ingest and agents' replies wait for the erasure to finish
    conversations = await conn.fetch(
        """SELECT id FROM conversations WHERE contact_id = ANY($1::text[]) AND account_id = $2
            ORDER BY id FOR UPDATE""",
        contact_ids,
        principal.account_id,
    )
    conversation_ids = [r["id"] for r in conversations]
    # what channels kept on them (a deep link's payload) is the person's too
    await conn.execute(
        """UPDATE conversations SET attributes = '{}', updated_at = now()
            WHERE id = ANY($1::text[]) AND attributes <> '{}'""",
        conversation_ids,
    )
    messages = await conn.fetch(
        """UPDATE messages
              SET content = NULL, attachments = '[]', template = NULL, error_message = NULL,
                  thread_key = NULL, edits = NULL, updated_at = now()
            WHERE conversation_id = ANY($1::text[])
        RETURNING id""",
        conversation_ids,
    )
    message_ids = sorted(r["id"] for r in messages)
    files = await conn.fetch(
        "DELETE FROM media WHERE message_id = ANY($1::text[]) RETURNING key", message_ids
    )
    calls = await conn.fetchval(
        """WITH c AS (
               UPDATE calls SET number = '', recording_key = NULL, voicemail_key = NULL,
                                updated_at = now()
                WHERE conversation_id = ANY($1::text[])
               RETURNING 1)
            SELECT count(*) FROM c""",
        conversation_ids,
    )
    notes = await conn.fetchval(
        """WITH n AS (DELETE FROM contact_notes WHERE contact_id = ANY($1::text[]) RETURNING 1)
           SELECT count(*) FROM n""",
        contact_ids,
    )
    identities = await conn.fetchval(
        """WITH i AS (DELETE FROM contact_identities WHERE contact_id = ANY($1::text[])
                      RETURNING 1)
           SELECT count(*) FROM i""",
        contact_ids,
    )
    await conn.execute(
        """UPDATE contacts SET name = NULL, attributes = '{}', company_id = NULL,
                               erased_at = now(), updated_at = now()
            WHERE id = ANY($1::text[])""",
        contact_ids,
    )
    # earlier audit entries of merges list the identities that moved
    await conn.execute(
        """UPDATE audit_log SET details = jsonb_set(details, '{identities}', '[]')
            WHERE account_id = $1 AND object_type = 'contact' AND object_id = ANY($2::text[])
              AND details ? 'identities'""",
        principal.account_id,
        contact_ids,
    )
    # the PostgreSQL archive (crm/archive, migration 0037) goes in this transaction; the archive
    # consumer clears MongoDB on contact.erased, and again here anything written since
    archived = await conn.fetchval(
        """WITH w AS (DELETE FROM archived_webhooks
                       WHERE account_id = $1 AND contact_id = ANY($2::text[]) RETURNING 1),
                p AS (DELETE FROM archived_profiles
                       WHERE account_id = $1 AND contact_id = ANY($2::text[]) RETURNING 1)
           SELECT (SELECT count(*) FROM w) + (SELECT count(*) FROM p)""",
        principal.account_id,
        contact_ids,
    )
    copies = await scrub_event_copies(conn, principal.account_id, contact_ids, conversation_ids)
    erased: dict[str, Any] = {
        "contact_id": contact_id,
        "merged_contacts": len(contact_ids) - 1,
        "conversations": len(conversation_ids),
        "messages": len(message_ids),
        "files": len(files),
        "calls": calls,
        "notes": notes,
        "identities": identities,
        "archived_documents": archived,
        "event_copies": copies,
    }
    await audit.record(
        conn,
        account_id=principal.account_id,
        actor=principal,
        action="contact.erased",
        object_type="contact",
        object_id=contact_id,
        origin=origin,
        details={k: v for k, v in erased.items() if k != "contact_id"},
    )
    event = make_event(
        ContactErased(
            contact_id=contact_id,
            conversation_ids=tuple(conversation_ids),
            message_ids=tuple(message_ids),
        ),
        account_id=principal.account_id,
        conversation_id=None,
        actor=Actor(ActorKind.AGENT, principal.agent_id),
        correlation_id=correlation_id,
    )
    await append_events(conn, [event])
    # the bytes last, inside the transaction: if the commit fails the request is retried and
    # finds the files gone already (deleting an absent file is fine)
    for f in files:
        await store.delete(f["key"])
    return erased
