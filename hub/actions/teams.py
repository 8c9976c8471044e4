"""Teams: a named group of users that owns inboxes. A supervisor sees the inboxes of their teams,
so membership changes change who sees what (the gateway drops its principal cache after them)."""

from __future__ import annotations

from collections.abc import Sequence

from hub.actions.accounts import Refused, audit_object, change_columns, known_ids
from hub.audit import Origin
from hub.authz import Principal
from hub.ids import new_id
from hub.store.db import Conn


def _name_taken() -> Refused:
    return Refused("conflict", "name_taken", "a team with this name exists", {"field": "name"})


async def _lock_team(conn: Conn, account_id: str, team_id: str) -> None:
    found = await conn.fetchval(
        "SELECT 1 FROM teams WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE",
        team_id,
        account_id,
    )
    if found is None:
        raise Refused("not_found", "not_found", "no such team")


async def create_team(
    conn: Conn, *, account_id: str, name: str, description: str, actor: Principal, origin: Origin
) -> str:
    team_id = new_id()
    made = await conn.fetchval(
        """INSERT INTO teams (id, account_id, name, description) VALUES ($1, $2, $3, $4)
           ON CONFLICT (account_id, name) DO NOTHING RETURNING id""",
        team_id,
        account_id,
        name,
        description,
    )
    if made is None:
        raise _name_taken()
    await audit_object(conn, "team", account_id, team_id, "team.created", actor, origin, name=name)
    return team_id


async def update_team(
    conn: Conn,
    *,
    account_id: str,
    team_id: str,
    actor: Principal,
    origin: Origin,
    name: str | None = None,
    description: str | None = None,
) -> None:
    changed = await change_columns(
        conn,
        "teams",
        account_id=account_id,
        row_id=team_id,
        given={"name": name, "description": description},
        missing="no such team",
        taken=_name_taken,
    )
    if changed:
        await audit_object(
            conn, "team", account_id, team_id, "team.updated", actor, origin, changed=changed
        )


async def delete_team(
    conn: Conn, *, account_id: str, team_id: str, actor: Principal, origin: Origin
) -> None:
    """Conversations keep the team id they were routed to; only the team and its links go."""
    name = await conn.fetchval(
        "DELETE FROM teams WHERE id = $1 AND account_id = $2 RETURNING name", team_id, account_id
    )
    if name is None:
        raise Refused("not_found", "not_found", "no such team")
    await audit_object(conn, "team", account_id, team_id, "team.deleted", actor, origin, name=name)


async def _replace_links(
    conn: Conn,
    *,
    table: str,
    column: str,
    team_id: str,
    account_id: str,
    ids: Sequence[str],
    actor: Principal,
    origin: Origin,
    action: str,
) -> None:
    await _lock_team(conn, account_id, team_id)
    wanted = await known_ids(conn, "users" if column == "user_id" else "inboxes", account_id, ids)
    rows = await conn.fetch(f"SELECT {column} AS id FROM {table} WHERE team_id = $1", team_id)
    current = {r["id"] for r in rows}
    added, removed = sorted(wanted - current), sorted(current - wanted)
    if not added and not removed:
        return
    await conn.execute(
        f"DELETE FROM {table} WHERE team_id = $1 AND {column} = ANY($2::text[])", team_id, removed
    )
    await conn.executemany(
        f"INSERT INTO {table} (team_id, {column}) VALUES ($1, $2)",
        [(team_id, i) for i in added],
    )
    await audit_object(
        conn, "team", account_id, team_id, action, actor, origin, added=added, removed=removed
    )


async def set_team_members(
    conn: Conn,
    *,
    account_id: str,
    team_id: str,
    user_ids: Sequence[str],
    actor: Principal,
    origin: Origin,
) -> None:
    """Replace the team's members with ``user_ids`` (users of the account)."""
    await _replace_links(
        conn,
        table="team_members",
        column="user_id",
        team_id=team_id,
        account_id=account_id,
        ids=user_ids,
        actor=actor,
        origin=origin,
        action="team.members_changed",
    )


async def set_team_inboxes(
    conn: Conn,
    *,
    account_id: str,
    team_id: str,
    inbox_ids: Sequence[str],
    actor: Principal,
    origin: Origin,
) -> None:
    """Replace the inboxes the team owns with ``inbox_ids`` (inboxes of the account)."""
    await _replace_links(
        conn,
        table="team_inboxes",
        column="inbox_id",
        team_id=team_id,
        account_id=account_id,
        ids=inbox_ids,
        actor=actor,
        origin=origin,
        action="team.inboxes_changed",
    )
