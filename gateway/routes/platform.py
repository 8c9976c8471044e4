"""Accounts (tenants) on a shared hub, for platform operators' tokens (``hub platform-token
create``): create an empty account, and list them. Nothing inside an account is theirs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from gateway.route import Call, Reply, route
from gateway.routes._common import Name, run, tidy
from hub.actions.accounts import create_account, list_accounts, time_zones
from hub.authz import Permission
from hub.store.db import Conn

TimeZone = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class NewAccount(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    time_zone: TimeZone = "UTC"

    def __post_init__(self) -> None:
        self.name = tidy(self.name)
        if self.time_zone not in time_zones():
            raise ValueError(f"unknown time zone {self.time_zone!r}")


class PlatformAccount(msgspec.Struct):
    id: str
    name: str
    time_zone: str
    created_at: datetime
    users: int = 0
    inboxes: int = 0


class PlatformAccounts(msgspec.Struct):
    accounts: list[PlatformAccount]


@route(
    "POST",
    "/api/v1/platform/accounts",
    permission=Permission.PLATFORM_MANAGE,
    summary="Create an account (a tenant): empty, with no users; then create its administrator",
    tag="platform",
    body=NewAccount,
    reply=PlatformAccount,
)
async def create_account_route(call: Call) -> Reply:
    body: NewAccount = call.body

    async def make(conn: Conn) -> PlatformAccount:
        made = await create_account(
            conn,
            name=body.name,
            time_zone=body.time_zone,
            by=call.principal.token_id,
            origin=call.origin,
        )
        created = await conn.fetchval("SELECT created_at FROM accounts WHERE id = $1", made.id)
        return PlatformAccount(made.id, made.name, made.time_zone, created)

    return Reply(await run(call, make), status=201)


@route(
    "GET",
    "/api/v1/platform/accounts",
    permission=Permission.PLATFORM_MANAGE,
    summary="Every account on this hub, with its number of users and inboxes",
    tag="platform",
    reply=PlatformAccounts,
)
async def list_accounts_route(call: Call) -> PlatformAccounts:
    rows = await list_accounts(call.hub.pool)
    return PlatformAccounts([msgspec.convert(r, PlatformAccount) for r in rows])


ROUTES = [create_account_route, list_accounts_route]
