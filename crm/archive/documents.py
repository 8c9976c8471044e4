"""What the archive keeps: a webhook document per ``message.webhook`` (the raw provider payload
an inbound message arrived in), and a contact's profile document (the contact, its identities,
attributes and company, and the contacts merged into it) read from PostgreSQL when a contact
event arrives, so a replayed event writes the same current state again rather than an older
one."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import asyncpg

from hub.events.envelope import Event
from hub.events.types import MessageWebhook
from hub.store.db import Conn
from hub.store.reads import CONTACT_COLUMNS


@dataclasses.dataclass(frozen=True, slots=True)
class Archived:
    """One document and what it is found by: ``key`` is its id (the event id of a webhook, the
    contact id of a profile); ``contact_id`` is whose it is, for erasure."""

    key: str
    account_id: str
    contact_id: str
    event_id: str
    document: dict[str, Any]


def webhook_document(event: Event[MessageWebhook]) -> Archived | None:
    """The webhook an inbound message arrived in (only messages that came by webhook have one:
    not an email read over IMAP, nor a web chat visitor's message); ``None`` once erased."""
    received = event.payload
    raw = received.provider_payload
    if raw is None:
        return None
    document: dict[str, Any] = {
        "event_id": event.id,
        "account_id": event.account_id,
        "contact_id": received.contact_id,
        "message_id": received.message_id,
        "conversation_id": event.conversation_id,
        "inbox_id": received.inbox_id,
        "channel": received.channel,
        "provider_message_id": received.provider_message_id,
        "received_at": event.occurred_at,
        "content_type": raw.content_type,
        "body": raw.body,
        "size": raw.size,
        "sha256": raw.sha256,
    }
    return Archived(event.id, event.account_id, received.contact_id, event.id, document)


async def profile_documents(
    conn: Conn | asyncpg.Pool[Any],
    account_id: str,
    contact_ids: Sequence[str],
    event_ids: dict[str, str],
) -> tuple[list[Archived], list[str]]:
    """Profiles of live contacts to write, and ids whose profile must go: contacts merged into
    another (their survivor's profile lists them), erased or gone."""
    rows = await conn.fetch(
        f"""SELECT {CONTACT_COLUMNS}, c.merged_into, c.erased_at,
                   (SELECT jsonb_build_object('id', o.id, 'name', o.name, 'domain', o.domain,
                                              'attributes', o.attributes)
                      FROM companies o WHERE o.id = c.company_id) AS company,
                   (SELECT coalesce(array_agg(m.id ORDER BY m.id), '{{}}')
                      FROM contacts m WHERE m.merged_into = c.id) AS merged_contacts
              FROM contacts c WHERE c.account_id = $1 AND c.id = ANY($2::text[])""",
        account_id,
        list(contact_ids),
    )
    found = {r["id"]: r for r in rows}
    keep: list[Archived] = []
    drop: list[str] = []
    for contact_id in contact_ids:
        row = found.get(contact_id)
        if row is None or row["merged_into"] is not None or row["erased_at"] is not None:
            drop.append(contact_id)
            continue
        document = {
            "contact_id": contact_id,
            "account_id": account_id,
            "name": row["name"],
            "identities": row["identities"],
            "attributes": row["attributes"] or {},
            "company": row["company"],
            "merged_contacts": list(row["merged_contacts"]),
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "event_id": event_ids[contact_id],
        }
        keep.append(Archived(contact_id, account_id, contact_id, event_ids[contact_id], document))
    return keep, drop
