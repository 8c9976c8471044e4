"""Merging two contacts into one, and the merges the hub suggests.

Everything of the merged contact moves to the survivor in the caller's transaction: identities,
conversations, calls, notes, the attributes the survivor lacks (the survivor's own values win),
its name and company when the survivor has none. The merged row stays as a redirect
(``contacts.merged_into``): reading its id answers the survivor. If both contacts have an
unresolved conversation in the same inbox (at most one per contact and inbox may be unresolved),
the merged contact's one is resolved first (a ``conversation.updated``) and then moved, so the
survivor's stays the open thread that the person's next message joins.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from hub import audit
from hub.actions.contacts import MAX_ATTRIBUTES_BYTES, ContactRefused
from hub.actions.conversations import Changes, update_conversation
from hub.authz import Principal
from hub.events import Actor, ActorKind, ContactMerged, ContactUpdated, Event, make_event
from hub.events.types import Identity
from hub.store.db import Conn
from hub.store.outbox import append_events


async def merge_contacts(
    conn: Conn,
    *,
    principal: Principal,
    survivor_id: str,
    merged_id: str,
    origin: audit.Origin,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """Run inside a transaction; what moved (also the audit entry's details)."""
    if survivor_id == merged_id:
        raise ContactRefused("same_contact", "a contact cannot be merged into itself")
    rows = await conn.fetch(
        """SELECT id, name, attributes, company_id, merged_into, erased_at FROM contacts
            WHERE id = ANY($1::text[]) AND account_id = $2 ORDER BY id FOR UPDATE""",
        [survivor_id, merged_id],
        principal.account_id,
    )
    found = {r["id"]: r for r in rows}
    if len(found) != 2:  # another account's contact is one that does not exist
        raise ContactRefused("not_found", "no such contact")
    survivor, merged = found[survivor_id], found[merged_id]
    if survivor["merged_into"] is not None or merged["merged_into"] is not None:
        raise ContactRefused("conflict", "the contact was already merged into another one")
    if survivor["erased_at"] is not None or merged["erased_at"] is not None:
        # an erased person stays erased: nothing of anyone else is joined to the anonymous row
        raise ContactRefused("conflict", "the contact was erased")
    attributes = {**merged["attributes"], **survivor["attributes"]}
    if len(msgspec.json.encode(attributes)) > MAX_ATTRIBUTES_BYTES:
        raise ContactRefused(
            "attributes_too_large", f"the merged attributes exceed {MAX_ATTRIBUTES_BYTES} bytes"
        )
    clashing = await conn.fetch(
        """SELECT m.id FROM conversations m
             JOIN conversations s ON s.inbox_id = m.inbox_id AND s.contact_id = $1
                                 AND s.status <> 'resolved'
            WHERE m.contact_id = $2 AND m.status <> 'resolved'
            ORDER BY m.id""",
        survivor_id,
        merged_id,
    )
    resolved = [r["id"] for r in clashing]
    for conversation_id in resolved:
        await update_conversation(
            conn,
            account_id=principal.account_id,
            agent_id=principal.agent_id,
            conversation_id=conversation_id,
            changes=Changes(status="resolved"),
            correlation_id=correlation_id,
        )
    identities = await conn.fetch(
        """UPDATE contact_identities SET contact_id = $1 WHERE contact_id = $2
           RETURNING channel, address""",
        survivor_id,
        merged_id,
    )
    conversations = await conn.fetch(
        """UPDATE conversations SET contact_id = $1, updated_at = now() WHERE contact_id = $2
           RETURNING id""",
        survivor_id,
        merged_id,
    )
    calls = await conn.fetch(
        "UPDATE calls SET contact_id = $1 WHERE contact_id = $2 RETURNING id",
        survivor_id,
        merged_id,
    )
    notes = await conn.fetch(
        "UPDATE contact_notes SET contact_id = $1 WHERE contact_id = $2 RETURNING id",
        survivor_id,
        merged_id,
    )
    await conn.execute(
        """UPDATE contacts SET name = $2, attributes = $3, company_id = $4, updated_at = now()
            WHERE id = $1""",
        survivor_id,
        survivor["name"] or merged["name"],
        attributes,
        survivor["company_id"] or merged["company_id"],
    )
    # the merged row is the redirect; earlier merges into it now point at the survivor directly
    await conn.execute(
        """UPDATE contacts SET merged_into = $1, updated_at = now()
            WHERE id = $2 OR merged_into = $2""",
        survivor_id,
        merged_id,
    )
    moved: dict[str, Any] = {
        "merged_contact_id": merged_id,
        "identities": [{"channel": r["channel"], "address": r["address"]} for r in identities],
        "conversations": sorted(r["id"] for r in conversations),
        "resolved_conversations": resolved,
        "calls": sorted(r["id"] for r in calls),
        "notes": sorted(r["id"] for r in notes),
        "attributes": sorted(set(merged["attributes"]) - set(survivor["attributes"])),
    }
    all_identities = await conn.fetch(
        """SELECT channel, address FROM contact_identities WHERE contact_id = $1
            ORDER BY channel, address""",
        survivor_id,
    )
    actor = Actor(ActorKind.AGENT, principal.agent_id)
    events: list[Event[Any]] = [
        make_event(
            ContactMerged(contact_id=survivor_id, merged_contact_id=merged_id),
            account_id=principal.account_id,
            conversation_id=None,
            actor=actor,
            correlation_id=correlation_id,
        ),
        make_event(
            ContactUpdated(
                contact_id=survivor_id,
                name=survivor["name"] or merged["name"],
                changed=("identities", "attributes", "conversations"),
                identities=tuple(Identity(r["channel"], r["address"]) for r in all_identities),
            ),
            account_id=principal.account_id,
            conversation_id=None,
            actor=actor,
            correlation_id=correlation_id,
        ),
    ]
    await append_events(conn, events)
    await audit.record(
        conn,
        account_id=principal.account_id,
        actor=principal,
        action="contact.merged",
        object_type="contact",
        object_id=survivor_id,
        origin=origin,
        details=moved,
    )
    return moved


_IN_SCOPE = """EXISTS (SELECT 1 FROM conversations v
                        WHERE v.contact_id = {col} AND v.inbox_id = ANY($2::text[]))"""


async def suggestions(
    conn: Conn | asyncpg.Pool[Any], account_id: str, scope: frozenset[str] | None, limit: int
) -> list[dict[str, Any]]:
    """Pairs of contacts holding the same address (ignoring case) under two identities: the
    same email written through the email channel and given by an API client, say. With
    ``scope`` (contacts limited by inbox) both contacts must be in sight."""
    where = ""
    args: list[Any] = [account_id, limit]
    if scope is not None:
        args = [account_id, sorted(scope), limit]
        where = (
            " AND "
            + _IN_SCOPE.format(col="a.contact_id")
            + " AND "
            + _IN_SCOPE.format(col="b.contact_id")
        )
    rows = await conn.fetch(
        f"""SELECT a.contact_id, b.contact_id AS other_id, a.channel, a.address,
                   b.channel AS other_channel, b.address AS other_address
              FROM contact_identities a
              JOIN contact_identities b
                ON b.account_id = a.account_id AND lower(b.address) = lower(a.address)
               AND b.contact_id > a.contact_id
             WHERE a.account_id = $1{where}
             ORDER BY a.contact_id, b.contact_id, a.channel, b.channel
             LIMIT ${len(args)}""",
        *args,
    )
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        pair = pairs.setdefault(
            (r["contact_id"], r["other_id"]),
            {"contact_ids": [r["contact_id"], r["other_id"]], "shared": []},
        )
        pair["shared"].append(
            [
                {"channel": r["channel"], "address": r["address"]},
                {"channel": r["other_channel"], "address": r["other_address"]},
            ]
        )
    return list(pairs.values())
