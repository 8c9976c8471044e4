"""Contact writes with the account's attribute definitions checked in the same transaction, and
the redirect from a merged contact's id to its survivor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from msgspec import UNSET, UnsetType

from crm.attributes import check_attributes
from hub.actions.contacts import create_contact, update_contact
from hub.authz import Principal
from hub.events.types import Identity
from hub.store.db import Conn


async def survivor_of(
    conn: Conn | asyncpg.Pool[Any], account_id: str, contact_id: str
) -> str | None:
    """The id that answers for ``contact_id``: itself, or the contact it was merged into (merges
    are flattened, so one step); ``None`` when the account has no such contact."""
    found: str | None = await conn.fetchval(
        "SELECT coalesce(merged_into, id) FROM contacts WHERE id = $1 AND account_id = $2",
        contact_id,
        account_id,
    )
    return found


async def create_checked(
    conn: Conn,
    *,
    principal: Principal,
    name: str | None,
    attributes: dict[str, Any],
    identities: Sequence[Identity],
    correlation_id: str | None = None,
) -> str:
    await check_attributes(conn, principal.account_id, attributes)
    return await create_contact(
        conn,
        principal=principal,
        name=name,
        attributes=attributes,
        identities=identities,
        correlation_id=correlation_id,
    )


async def update_checked(
    conn: Conn,
    *,
    principal: Principal,
    contact_id: str,
    name: str | UnsetType | None = UNSET,
    attributes: dict[str, Any] | UnsetType = UNSET,
    company_id: str | UnsetType | None = UNSET,
    correlation_id: str | None = None,
) -> bool:
    if not isinstance(attributes, UnsetType):
        await check_attributes(conn, principal.account_id, attributes)
    return await update_contact(
        conn,
        principal=principal,
        contact_id=contact_id,
        name=name,
        attributes=attributes,
        company_id=company_id,
        correlation_id=correlation_id,
    )
