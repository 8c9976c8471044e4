"""Canned responses: saved replies an agent inserts by typing their short code."""

from __future__ import annotations

import asyncpg

from hub.actions.accounts import Refused
from hub.audit import Origin, record
from hub.authz import Principal
from hub.ids import new_id
from hub.store.db import Conn


def _code_taken() -> Refused:
    return Refused("conflict", "short_code_taken", "a canned response with this short code exists")


async def _audit(
    conn: Conn,
    account_id: str,
    canned_id: str,
    action: str,
    actor: Principal,
    origin: Origin,
    **details: object,
) -> None:
    await record(
        conn,
        account_id=account_id,
        actor=actor,
        action=action,
        object_type="canned_response",
        object_id=canned_id,
        origin=origin,
        details=details,
    )


async def create_canned(
    conn: Conn, *, account_id: str, short_code: str, content: str, actor: Principal, origin: Origin
) -> str:
    canned_id = new_id()
    made = await conn.fetchval(
        """INSERT INTO canned_responses (id, account_id, short_code, content)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (account_id, short_code) DO NOTHING RETURNING id""",
        canned_id,
        account_id,
        short_code,
        content,
    )
    if made is None:
        raise _code_taken()
    await _audit(
        conn, account_id, canned_id, "canned_response.created", actor, origin, short_code=short_code
    )
    return canned_id


async def update_canned(
    conn: Conn,
    *,
    account_id: str,
    canned_id: str,
    actor: Principal,
    origin: Origin,
    short_code: str | None = None,
    content: str | None = None,
) -> None:
    row = await conn.fetchrow(
        """SELECT short_code, content FROM canned_responses
            WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE""",
        canned_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such canned response")
    given = {"short_code": short_code, "content": content}
    changed = {k: v for k, v in given.items() if v is not None and v != row[k]}
    if not changed:
        return
    try:
        await conn.execute(
            """UPDATE canned_responses SET short_code = $2, content = $3, updated_at = now()
                WHERE id = $1""",
            canned_id,
            *(changed.get(k, row[k]) for k in given),
        )
    except asyncpg.UniqueViolationError as exc:
        raise _code_taken() from exc
    await _audit(
        conn,
        account_id,
        canned_id,
        "canned_response.updated",
        actor,
        origin,
        changed=sorted(changed),
    )


async def delete_canned(
    conn: Conn, *, account_id: str, canned_id: str, actor: Principal, origin: Origin
) -> None:
    code = await conn.fetchval(
        "DELETE FROM canned_responses WHERE id = $1 AND account_id = $2 RETURNING short_code",
        canned_id,
        account_id,
    )
    if code is None:
        raise Refused("not_found", "not_found", "no such canned response")
    await _audit(
        conn, account_id, canned_id, "canned_response.deleted", actor, origin, short_code=code
    )
