"""Canned responses: saved replies an agent inserts by typing their short code."""

from __future__ import annotations

from hub.actions.accounts import Refused, audit_object, change_columns
from hub.audit import Origin
from hub.authz import Principal
from hub.ids import new_id
from hub.store.db import Conn


def _code_taken() -> Refused:
    return Refused(
        "conflict",
        "short_code_taken",
        "a canned response with this short code exists",
        {"field": "short_code"},
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
    await audit_object(
        conn,
        "canned_response",
        account_id,
        canned_id,
        "canned_response.created",
        actor,
        origin,
        short_code=short_code,
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
    changed = await change_columns(
        conn,
        "canned_responses",
        account_id=account_id,
        row_id=canned_id,
        given={"short_code": short_code, "content": content},
        missing="no such canned response",
        taken=_code_taken,
    )
    if changed:
        await audit_object(
            conn,
            "canned_response",
            account_id,
            canned_id,
            "canned_response.updated",
            actor,
            origin,
            changed=changed,
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
    await audit_object(
        conn,
        "canned_response",
        account_id,
        canned_id,
        "canned_response.deleted",
        actor,
        origin,
        short_code=code,
    )
