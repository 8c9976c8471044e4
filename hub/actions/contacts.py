"""Contacts managed by agents: create (with channel identities), rename, merge attributes, delete.

Each change is announced (``contact.created`` / ``contact.updated``) in the same transaction. An
identity (channel, address) belongs to one contact of the account; claiming one already owned is
a conflict, never a silent move. Deleting is refused while the contact has conversations (their
erasure is the CRM's job).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from hub import audit, display_names
from hub.authz import Principal
from hub.events import Actor, ActorKind, ContactCreated, ContactUpdated, make_event
from hub.events.types import Identity
from hub.identities import normalise
from hub.ids import new_id
from hub.refusals import CodedRefusal
from hub.store.db import Conn
from hub.store.outbox import append_events

MAX_ATTRIBUTES_BYTES = 16_384


class ContactRefused(CodedRefusal):
    """``not_found`` (404), ``conflict`` (409), otherwise 422."""


def _actor(principal: Principal) -> Actor:
    return Actor(ActorKind.AGENT, principal.agent_id)


async def _identities(conn: Conn, contact_id: str) -> tuple[Identity, ...]:
    rows = await conn.fetch(
        """SELECT channel, address FROM contact_identities WHERE contact_id = $1
            ORDER BY channel, address""",
        contact_id,
    )
    return tuple(Identity(r["channel"], r["address"]) for r in rows)


def normalised_identities(identities: Sequence[Identity]) -> list[Identity]:
    """Each identity by its channel's rule, once; 422 ``invalid_identity`` naming the first
    address that cannot be one."""
    out: dict[tuple[str, str], Identity] = {}
    for identity in identities:
        address = normalise(identity.channel, identity.address)
        if address is None:
            raise ContactRefused(
                "invalid_identity",
                f"{identity.address!r} is not a {identity.channel} address",
                {"channel": identity.channel, "address": identity.address},
            )
        out.setdefault((identity.channel, address), Identity(identity.channel, address))
    return list(out.values())


async def create_contact(
    conn: Conn,
    *,
    principal: Principal,
    name: str | None,
    attributes: dict[str, Any],
    identities: Sequence[Identity],
    correlation_id: str | None = None,
) -> str:
    """Run inside a transaction; the new contact's id. Addresses are stored by their channel's
    rule (:mod:`hub.identities`), so a number typed as ``+94 77 123 4567`` is the contact a
    WhatsApp or SMS message from that number lands on."""
    name = display_names.clean(name)
    identities = normalised_identities(identities)
    contact_id = new_id()
    await conn.execute(
        "INSERT INTO contacts (id, account_id, name, attributes) VALUES ($1, $2, $3, $4)",
        contact_id,
        principal.account_id,
        name,
        attributes,
    )
    if identities:
        won = await conn.fetch(
            """INSERT INTO contact_identities (account_id, channel, address, contact_id)
               SELECT $1, x.channel, x.address, $4
                 FROM unnest($2::text[], $3::text[]) AS x(channel, address)
               ON CONFLICT DO NOTHING
               RETURNING channel, address""",
            principal.account_id,
            [i.channel for i in identities],
            [i.address for i in identities],
            contact_id,
        )
        claimed = {(r["channel"], r["address"]) for r in won}
        taken = [
            {"channel": i.channel, "address": i.address}
            for i in identities
            if (i.channel, i.address) not in claimed
        ]
        if taken:  # the caller's transaction rolls back the contact too
            raise ContactRefused(
                "conflict", "an address already belongs to another contact", {"taken": taken}
            )
    event = make_event(
        ContactCreated(
            contact_id=contact_id,
            name=name,
            identities=tuple(sorted(identities, key=lambda i: (i.channel, i.address))),
        ),
        account_id=principal.account_id,
        conversation_id=None,
        actor=_actor(principal),
        correlation_id=correlation_id,
    )
    await append_events(conn, [event])
    return contact_id


async def update_contact(
    conn: Conn,
    *,
    principal: Principal,
    contact_id: str,
    name: str | UnsetType | None = UNSET,
    attributes: dict[str, Any] | UnsetType = UNSET,
    company_id: str | UnsetType | None = UNSET,
    correlation_id: str | None = None,
) -> bool:
    """Rename, merge attributes (a key set to ``None`` is removed) and/or set the company.
    Whether anything changed; no change writes nothing and announces nothing."""
    row = await conn.fetchrow(
        """SELECT name, attributes, company_id FROM contacts
            WHERE id = $1 AND account_id = $2 FOR UPDATE""",
        contact_id,
        principal.account_id,
    )
    if row is None:
        raise ContactRefused("not_found", "no such contact")
    changed: list[str] = []
    new_name = row["name"]
    if name is not UNSET:
        name = display_names.clean(name)
    if name is not UNSET and name != row["name"]:
        new_name = name
        changed.append("name")
    merged = dict(row["attributes"])
    if attributes is not UNSET:
        for key, value in attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if merged != row["attributes"]:
            changed.append("attributes")
            if len(msgspec.json.encode(merged)) > MAX_ATTRIBUTES_BYTES:
                raise ContactRefused(
                    "attributes_too_large", f"attributes exceed {MAX_ATTRIBUTES_BYTES} bytes"
                )
    new_company = row["company_id"]
    if company_id is not UNSET and company_id != row["company_id"]:
        if company_id is not None and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM companies WHERE id = $1 AND account_id = $2)",
            company_id,
            principal.account_id,
        ):
            raise ContactRefused("unknown_company", "no such company", {"company_id": company_id})
        new_company = company_id
        changed.append("company")
    if not changed:
        return False
    await conn.execute(
        """UPDATE contacts SET name = $2, attributes = $3, company_id = $4, updated_at = now()
            WHERE id = $1""",
        contact_id,
        new_name,
        merged,
        new_company,
    )
    event = make_event(
        ContactUpdated(
            contact_id=contact_id,
            name=new_name,
            changed=tuple(changed),
            identities=await _identities(conn, contact_id),
        ),
        account_id=principal.account_id,
        conversation_id=None,
        actor=_actor(principal),
        correlation_id=correlation_id,
    )
    await append_events(conn, [event])
    return True


async def delete_contact(
    conn: Conn, *, principal: Principal, contact_id: str, origin: audit.Origin
) -> None:
    """Delete a contact and its identities, unless conversations (or merged contacts) point to
    it. The row lock makes a concurrent conversation insert wait, then fail its key check."""
    found = await conn.fetchrow(
        "SELECT merged_into FROM contacts WHERE id = $1 AND account_id = $2 FOR UPDATE",
        contact_id,
        principal.account_id,
    )
    if found is None:
        raise ContactRefused("not_found", "no such contact")
    if found["merged_into"] is not None:  # the redirect to the survivor stays
        raise ContactRefused("conflict", "the contact was merged into another one")
    await conn.execute("DELETE FROM contact_notes WHERE contact_id = $1", contact_id)
    used = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM conversations WHERE contact_id = $1)
                  OR EXISTS (SELECT 1 FROM contacts WHERE merged_into = $1)""",
        contact_id,
    )
    if used:
        raise ContactRefused(
            "conflict", "the contact has conversations; erase it instead of deleting it"
        )
    await conn.execute("DELETE FROM contact_identities WHERE contact_id = $1", contact_id)
    await conn.execute("DELETE FROM contacts WHERE id = $1", contact_id)
    await audit.record(
        conn,
        account_id=principal.account_id,
        actor=principal,
        action="contact.deleted",
        object_type="contact",
        object_id=contact_id,
        origin=origin,
    )
