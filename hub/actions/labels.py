"""Labels of an account: a name (unique per account) with a colour, put on conversations.

Conversations carry label *names*; renaming or deleting a label here does not rewrite the
conversations already tagged with it.
"""

from __future__ import annotations

from hub.actions.accounts import Refused, audit_object, change_columns
from hub.audit import Origin
from hub.authz import Principal
from hub.ids import new_id
from hub.store.db import Conn


def _name_taken() -> Refused:
    return Refused("conflict", "name_taken", "a label with this name exists", {"field": "name"})


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
    await audit_object(
        conn, "label", account_id, label_id, "label.created", actor, origin, name=name
    )
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
    changed = await change_columns(
        conn,
        "labels",
        account_id=account_id,
        row_id=label_id,
        given={"name": name, "color": color, "description": description},
        missing="no such label",
        taken=_name_taken,
        touch=False,
    )
    if changed:
        await audit_object(
            conn, "label", account_id, label_id, "label.updated", actor, origin, changed=changed
        )


async def delete_label(
    conn: Conn, *, account_id: str, label_id: str, actor: Principal, origin: Origin
) -> None:
    name = await conn.fetchval(
        "DELETE FROM labels WHERE id = $1 AND account_id = $2 RETURNING name", label_id, account_id
    )
    if name is None:
        raise Refused("not_found", "not_found", "no such label")
    await audit_object(
        conn, "label", account_id, label_id, "label.deleted", actor, origin, name=name
    )
