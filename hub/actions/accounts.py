"""Account settings (name, time zone, business hours, MFA policy) and the refusal every admin
action raises.

Admin actions are plain functions taking a connection inside the caller's transaction; each one
writes its audit entry on that same connection, so the log and the change commit together.
"""

from __future__ import annotations

import dataclasses
import functools
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any, Literal

import asyncpg

from hub.audit import Origin, record
from hub.authz import Principal
from hub.ids import new_id
from hub.store.db import Conn

Kind = Literal["not_found", "conflict", "invalid"]


class Refused(ValueError):
    """What the caller got wrong: ``not_found`` (404), ``conflict`` (409), ``invalid`` (422)."""

    def __init__(self, kind: Kind, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.details = details


async def audit_object(
    conn: Conn,
    object_type: str,
    account_id: str,
    object_id: str,
    action: str,
    actor: Principal,
    origin: Origin,
    **details: object,
) -> None:
    """The audit entry of an admin action on one object, with ``details`` as keywords."""
    await record(
        conn,
        account_id=account_id,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        origin=origin,
        details=details,
    )


async def change_columns(
    conn: Conn,
    table: str,
    *,
    account_id: str,
    row_id: str,
    given: dict[str, str | None],
    missing: str,
    taken: Callable[[], Refused],
    touch: bool = True,
) -> list[str]:
    """Set the ``given`` columns (those not None that differ) of one row of the account, locked
    first; answers the names of the changed columns, sorted (none: nothing was written). No such
    row is refused as ``missing``; a unique violation is ``taken()``. ``touch`` also sets
    ``updated_at``."""
    row = await conn.fetchrow(
        f"SELECT {', '.join(given)} FROM {table}"
        " WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE",
        row_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", missing)
    changed = {k: v for k, v in given.items() if v is not None and v != row[k]}
    if not changed:
        return []
    columns = [f"{k} = ${i}" for i, k in enumerate(given, 2)]
    if touch:
        columns.append("updated_at = now()")
    try:
        await conn.execute(
            f"UPDATE {table} SET {', '.join(columns)} WHERE id = $1",
            row_id,
            *(changed.get(k, row[k]) for k in given),
        )
    except asyncpg.UniqueViolationError as exc:
        raise taken() from exc
    return sorted(changed)


async def known_ids(
    conn: Conn, table: Literal["users", "inboxes"], account_id: str, ids: Sequence[str]
) -> set[str]:
    """The ids, all rows of ``table`` in the account and locked against deletion until commit;
    otherwise refused (422: they came in the body) with the unknown ones, whether missing or
    another account's."""
    wanted = set(ids)
    rows = await conn.fetch(
        f"SELECT id FROM {table} WHERE account_id = $1 AND id = ANY($2::text[]) FOR KEY SHARE",
        account_id,
        sorted(wanted),
    )
    found = {r["id"] for r in rows}
    if unknown := wanted - found:
        raise Refused(
            "invalid",
            f"unknown_{table}",
            f"some {table} do not exist in this account",
            {"unknown": sorted(unknown)},
        )
    return found


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA zone names an account may use: a fixed set, never a path looked up on disk."""
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


ACCOUNT_FIELDS = ("name", "time_zone", "business_hours", "mfa_required", "contacts_by_inbox")


async def update_account(
    conn: Conn,
    *,
    account_id: str,
    changes: dict[str, Any],
    actor: Principal,
    origin: Origin,
) -> None:
    """Apply ``changes`` (a subset of :data:`ACCOUNT_FIELDS`, already validated) and audit what
    actually changed, with the old and new values (none of them is secret)."""
    unknown = set(changes) - set(ACCOUNT_FIELDS)
    if unknown:
        raise ValueError(f"not account fields: {sorted(unknown)}")
    row = await conn.fetchrow(
        "SELECT name, time_zone, business_hours, mfa_required, contacts_by_inbox FROM accounts"
        " WHERE id = $1 FOR NO KEY UPDATE",
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such account")
    changed = {k: {"from": row[k], "to": v} for k, v in changes.items() if row[k] != v}
    if not changed:
        return
    await conn.execute(
        """UPDATE accounts SET name = $2, time_zone = $3, business_hours = $4,
                  mfa_required = $5, contacts_by_inbox = $6, updated_at = now()
            WHERE id = $1""",
        account_id,
        *(changes.get(k, row[k]) for k in ACCOUNT_FIELDS),
    )
    await audit_object(
        conn, "account", account_id, account_id, "account.updated", actor, origin, changes=changed
    )


@dataclasses.dataclass(frozen=True)
class CreatedAccount:
    id: str
    name: str
    time_zone: str


async def create_account(
    conn: Conn,
    *,
    name: str,
    time_zone: str = "UTC",
    by: str | None = None,
    origin: Origin | None = None,
) -> CreatedAccount:
    """A new tenant: an empty account (no users, inboxes or data) in one transaction with its
    audit entry. ``by``: the platform token that made it (``None``: the command line)."""
    name = " ".join(name.split())
    if not 1 <= len(name) <= 200 or "\x00" in name:
        raise Refused("invalid", "invalid_name", "an account name is 1 to 200 characters")
    if time_zone not in time_zones():
        raise Refused("invalid", "invalid_time_zone", f"{time_zone!r} is no IANA time zone")
    account_id = new_id()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO accounts (id, name, time_zone) VALUES ($1, $2, $3)",
            account_id,
            name,
            time_zone,
        )
        await record(
            conn,
            account_id=account_id,
            actor=None,
            action="account.created",
            object_type="account",
            object_id=account_id,
            origin=origin or Origin(),
            details={"name": name, "via": "platform" if by else "cli", "platform_token": by},
            actor_override=("system", None),
        )
    return CreatedAccount(account_id, name, time_zone)


async def list_accounts(conn: Conn | asyncpg.Pool[Any]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT a.id, a.name, a.time_zone, a.created_at,
                  (SELECT count(*) FROM users u WHERE u.account_id = a.id) AS users,
                  (SELECT count(*) FROM inboxes i WHERE i.account_id = a.id) AS inboxes
             FROM accounts a ORDER BY a.id"""
    )
    return [dict(r) for r in rows]
