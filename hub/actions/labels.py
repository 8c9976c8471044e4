"""Labels of an account: a name (unique per account) with a colour, put on conversations.

Conversations carry label *names*; renaming or deleting a label here does not rewrite the
conversations already tagged with it.
"""

from __future__ import annotations

import asyncpg

from hub.actions.accounts import Refused
from hub.audit import Origin, record
from hub.authz import Principal
from hub.ids import new_id
from hub.store.db import Conn


def _name_taken() -> Refused:
    return Refused("conflict", "name_taken", "a label with this name exists")


async def _audit(
    conn: Conn,
    account_id: str,
    label_id: str,
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
        object_type="label",
        object_id=label_id,
        origin=origin,
        details=details,
    )


async def create_label(
    conn: Conn,
    *,
    account_id: str,
    name: str,
    color: str,
    description: str,
    actor: Principal,
    origin: Origin,
) -> str:
    label_id = new_id()
    made = await conn.fetchval(
        """INSERT INTO labels (id, account_id, name, color, description) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (account_id, name) DO NOTHING RETURNING id""",
        label_id,
        account_id,
        name,
        color,
        description,
    )
    if made is None:
        raise _name_taken()
    await _audit(conn, account_id, label_id, "label.created", actor, origin, name=name)
    return label_id


async def update_label(
    conn: Conn,
    *,
    account_id: str,
    label_id: str,
    actor: Principal,
    origin: Origin,
    name: str | None = None,
    color: str | None = None,
    description: str | None = None,
) -> None:
    row = await conn.fetchrow(
        """SELECT name, color, description FROM labels
            WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE""",
        label_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such label")
    given = {"name": name, "color": color, "description": description}
    changed = {k: v for k, v in given.items() if v is not None and v != row[k]}
    if not changed:
        return
    try:
        await conn.execute(
            "UPDATE labels SET name = $2, color = $3, description = $4 WHERE id = $1",
            label_id,
            *(changed.get(k, row[k]) for k in given),
        )
    except asyncpg.UniqueViolationError as exc:
        raise _name_taken() from exc
    await _audit(
        conn, account_id, label_id, "label.updated", actor, origin, changed=sorted(changed)
    )


async def delete_label(
    conn: Conn, *, account_id: str, label_id: str, actor: Principal, origin: Origin
) -> None:
    name = await conn.fetchval(
        "DELETE FROM labels WHERE id = $1 AND account_id = $2 RETURNING name", label_id, account_id
    )
    if name is None:
        raise Refused("not_found", "not_found", "no such label")
    await _audit(conn, account_id, label_id, "label.deleted", actor, origin, name=name)
