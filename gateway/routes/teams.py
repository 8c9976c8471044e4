"""Teams: groups of users owning inboxes. A supervisor sees the inboxes of their teams, so every
membership change here changes who sees what, at once in this process (the principal cache is
dropped) and within seconds elsewhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import msgspec

from gateway.route import Call, Reply, route
from gateway.routes._common import Description, Ids, ListQuery, Name, not_found, path_id, run, tidy
from hub.actions.teams import (
    create_team,
    delete_team,
    set_team_inboxes,
    set_team_members,
    update_team,
)
from hub.authz import Permission
from hub.store.admin_reads import Db, get_team, list_teams
from hub.store.db import Conn


class TeamListQuery(ListQuery, forbid_unknown_fields=True):
    pass


class Team(msgspec.Struct):
    id: str
    name: str
    description: str
    member_ids: list[str]
    inbox_ids: list[str]
    created_at: datetime
    updated_at: datetime


class TeamPage(msgspec.Struct):
    data: list[Team]
    next_cursor: str | None


class TeamNew(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Description = ""

    def __post_init__(self) -> None:
        self.name = tidy(self.name)


class TeamPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = tidy(self.name)


class TeamMembers(msgspec.Struct, forbid_unknown_fields=True):
    """The complete new set of members: users of the account."""

    user_ids: Ids


class TeamInboxes(msgspec.Struct, forbid_unknown_fields=True):
    """The complete new set of the team's inboxes: inboxes of the account."""

    inbox_ids: Ids


async def _read(db: Db, account_id: str, team_id: str) -> Team:
    row = await get_team(db, account_id, team_id)
    if row is None:
        raise not_found("team")
    return msgspec.convert(row, Team)


@route(
    "GET",
    "/api/v1/teams",
    permission=Permission.ACCOUNT_READ,
    summary="List the account's teams",
    tag="teams",
    query=TeamListQuery,
    reply=TeamPage,
)
async def list_teams_route(call: Call) -> TeamPage:
    q: TeamListQuery = call.query
    items, cursor = await list_teams(
        call.hub.pool, call.principal.account_id, limit=q.limit, cursor=q.cursor
    )
    return TeamPage(msgspec.convert(items, list[Team]), cursor)


@route(
    "GET",
    "/api/v1/teams/{team_id}",
    permission=Permission.ACCOUNT_READ,
    summary="One team, with its members and inboxes",
    tag="teams",
    reply=Team,
)
async def get_team_route(call: Call) -> Team:
    return await _read(call.hub.pool, call.principal.account_id, path_id(call, "team_id", "team"))


@route(
    "POST",
    "/api/v1/teams",
    permission=Permission.TEAMS_MANAGE,
    summary="Create a team (names are unique in the account)",
    tag="teams",
    body=TeamNew,
    reply=Team,
    status=201,
    errors=(409,),
)
async def create_team_route(call: Call) -> Team:
    body: TeamNew = call.body
    who = call.principal

    async def create(conn: Conn) -> Team:
        team_id = await create_team(
            conn,
            account_id=who.account_id,
            name=body.name,
            description=body.description,
            actor=who,
            origin=call.origin,
        )
        return await _read(conn, who.account_id, team_id)

    return await run(call, create)


@route(
    "PATCH",
    "/api/v1/teams/{team_id}",
    permission=Permission.TEAMS_MANAGE,
    summary="Rename a team or change its description",
    tag="teams",
    body=TeamPatch,
    reply=Team,
    errors=(409,),
)
async def patch_team_route(call: Call) -> Team:
    body: TeamPatch = call.body
    who = call.principal
    team_id = path_id(call, "team_id", "team")

    async def change(conn: Conn) -> Team:
        await update_team(
            conn,
            account_id=who.account_id,
            team_id=team_id,
            actor=who,
            origin=call.origin,
            name=body.name if isinstance(body.name, str) else None,
            description=body.description if isinstance(body.description, str) else None,
        )
        return await _read(conn, who.account_id, team_id)

    return await run(call, change)


@route(
    "DELETE",
    "/api/v1/teams/{team_id}",
    permission=Permission.TEAMS_MANAGE,
    summary="Delete a team (its members and inboxes stay)",
    tag="teams",
    status=204,
)
async def delete_team_route(call: Call) -> Reply:
    who = call.principal
    await run(
        call,
        delete_team,
        account_id=who.account_id,
        team_id=path_id(call, "team_id", "team"),
        actor=who,
        origin=call.origin,
    )
    call.state.auth.forget()  # its supervisors no longer see its inboxes
    return Reply(None, 204)


async def _replace(
    call: Call, replace: Callable[..., Awaitable[None]], **ids: Sequence[str]
) -> Team:
    """``replace`` one of the team's sets (its members or its inboxes) with ``ids``; supervisors
    may see other inboxes after it."""
    who = call.principal
    team_id = path_id(call, "team_id", "team")

    async def change(conn: Conn) -> Team:
        await replace(
            conn, account_id=who.account_id, team_id=team_id, actor=who, origin=call.origin, **ids
        )
        return await _read(conn, who.account_id, team_id)

    team = await run(call, change)
    call.state.auth.forget()
    return team


@route(
    "PUT",
    "/api/v1/teams/{team_id}/members",
    permission=Permission.TEAMS_MANAGE,
    summary="Replace the team's members",
    tag="teams",
    body=TeamMembers,
    reply=Team,
)
async def put_team_members_route(call: Call) -> Team:
    """422 with the unknown ids when some are not users of the account."""
    body: TeamMembers = call.body
    return await _replace(call, set_team_members, user_ids=body.user_ids)


@route(
    "PUT",
    "/api/v1/teams/{team_id}/inboxes",
    permission=Permission.TEAMS_MANAGE,
    summary="Replace the inboxes the team owns",
    tag="teams",
    body=TeamInboxes,
    reply=Team,
)
async def put_team_inboxes_route(call: Call) -> Team:
    """422 with the unknown ids when some are not inboxes of the account."""
    body: TeamInboxes = call.body
    return await _replace(call, set_team_inboxes, inbox_ids=body.inbox_ids)


ROUTES = [
    list_teams_route,
    get_team_route,
    create_team_route,
    patch_team_route,
    delete_team_route,
    put_team_members_route,
    put_team_inboxes_route,
]
