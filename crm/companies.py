"""Companies: a name, a web domain (one company per domain in an account) and free attributes;
contacts belong to at most one (``contacts.company_id``, set through the contact). Changes are
in the audit log; a company's contacts and conversations are read through it."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET, UnsetType

from hub import audit
from hub.actions.contacts import ContactRefused
from hub.authz import Principal
from hub.ids import new_id
from hub.store.db import Conn

COLUMNS = "id, name, domain, attributes, created_at, updated_at"


def _domain(domain: str | None) -> str | None:
    return domain.strip().lower().rstrip(".") if domain else None


async def _audit(
    conn: Conn, principal: Principal, action: str, company_id: str, origin: audit.Origin, **d: Any
) -> None:
    await audit.record(
        conn,
        account_id=principal.account_id,
        actor=principal,
        action=action,
        object_type="company",
        object_id=company_id,
        origin=origin,
        details=d or None,
    )


async def create_company(
    conn: Conn,
    *,
    principal: Principal,
    name: str,
    domain: str | None,
    attributes: dict[str, Any],
    origin: audit.Origin,
) -> str:
    company_id = new_id()
    made = await conn.fetchval(
        """INSERT INTO companies (id, account_id, name, domain, attributes)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id""",
        company_id,
        principal.account_id,
        name,
        _domain(domain),
        attributes,
    )
    if made is None:
        raise ContactRefused("conflict", "a company with that domain exists")
    await _audit(conn, principal, "company.created", company_id, origin, name=name)
    return company_id


async def update_company(
    conn: Conn,
    *,
    principal: Principal,
    company_id: str,
    name: str | UnsetType = UNSET,
    domain: str | UnsetType | None = UNSET,
    attributes: dict[str, Any] | UnsetType = UNSET,
    origin: audit.Origin,
) -> None:
    """``attributes`` merge into the stored ones (a key set to ``None`` is removed)."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM companies WHERE id = $1 AND account_id = $2 FOR UPDATE",
        company_id,
        principal.account_id,
    )
    if row is None:
        raise ContactRefused("not_found", "no such company")
    merged = dict(row["attributes"])
    if not isinstance(attributes, UnsetType):
        for key, value in attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
    new_domain = row["domain"] if isinstance(domain, UnsetType) else _domain(domain)
    taken = new_domain is not None and new_domain != row["domain"]
    if taken and await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM companies WHERE account_id = $1 AND domain = $2)",
        principal.account_id,
        new_domain,
    ):
        raise ContactRefused("conflict", "a company with that domain exists")
    await conn.execute(
        """UPDATE companies SET name = $2, domain = $3, attributes = $4, updated_at = now()
            WHERE id = $1""",
        company_id,
        row["name"] if isinstance(name, UnsetType) else name,
        new_domain,
        merged,
    )
    await _audit(conn, principal, "company.updated", company_id, origin)


async def delete_company(
    conn: Conn, *, principal: Principal, company_id: str, origin: audit.Origin
) -> None:
    """Its contacts stay, without a company."""
    found = await conn.fetchval(
        "SELECT 1 FROM companies WHERE id = $1 AND account_id = $2 FOR UPDATE",
        company_id,
        principal.account_id,
    )
    if found is None:
        raise ContactRefused("not_found", "no such company")
    released = await conn.fetchval(
        """WITH r AS (UPDATE contacts SET company_id = NULL, updated_at = now()
                       WHERE company_id = $1 RETURNING 1)
           SELECT count(*) FROM r""",
        company_id,
    )
    await conn.execute("DELETE FROM companies WHERE id = $1", company_id)
    await _audit(conn, principal, "company.deleted", company_id, origin, contacts=released)
