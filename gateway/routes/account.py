"""The caller's account: name, time zone, business hours, the MFA policy and who sees which
contacts (``contacts_by_inbox``: callers limited to some inboxes see only the contacts of those
inboxes' conversations)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from gateway.route import Call, route
from gateway.routes._common import Name, not_found, run, tidy, whole
from hub.actions.accounts import time_zones, update_account
from hub.authz import Permission
from hub.store.admin_reads import Db, get_account
from hub.store.db import Conn

Clock = Annotated[str, msgspec.Meta(pattern=whole(r"([01][0-9]|2[0-3]):[0-5][0-9]"))]
TimeZone = Annotated[
    str, msgspec.Meta(max_length=64, extra_json_schema={"enum": sorted(time_zones())})
]


class BusinessHours(msgspec.Struct, forbid_unknown_fields=True):
    """Open on ``day`` (0 Monday .. 6 Sunday) from ``open`` to ``close``, in the account's time
    zone. A ``close`` at or before ``open`` is on the next day (``22:00``-``02:00``; equal
    times: 24 hours); spans of a day may overlap (the account is open in any of them)."""

    # a JSON number (``4`` or ``4.0``: the same integer to JSON Schema), stored as an int
    day: Annotated[float, msgspec.Meta(ge=0, le=6, multiple_of=1)]
    open: Clock
    close: Clock

    def __post_init__(self) -> None:
        self.day = int(self.day)


class Account(msgspec.Struct):
    id: str
    name: str
    time_zone: str
    business_hours: list[BusinessHours]
    mfa_required: bool
    contacts_by_inbox: bool
    created_at: datetime
    updated_at: datetime


class AccountPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    time_zone: TimeZone | msgspec.UnsetType = msgspec.UNSET
    business_hours: (
        Annotated[list[BusinessHours], msgspec.Meta(max_length=100)] | msgspec.UnsetType
    ) = msgspec.UNSET
    mfa_required: bool | msgspec.UnsetType = msgspec.UNSET
    contacts_by_inbox: bool | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = tidy(self.name)
        if isinstance(self.time_zone, str) and self.time_zone not in time_zones():
            raise ValueError(f"unknown time zone {self.time_zone!r}")


async def _read(db: Db, account_id: str) -> Account:
    row = await get_account(db, account_id)
    if row is None:
        raise not_found("account")
    return msgspec.convert(row, Account)


@route(
    "GET",
    "/api/v1/account",
    permission=Permission.ACCOUNT_READ,
    summary="The caller's account settings",
    tag="account",
    reply=Account,
)
async def get_account_route(call: Call) -> Account:
    return await _read(call.hub.pool, call.principal.account_id)


@route(
    "PATCH",
    "/api/v1/account",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Change the account's name, time zone, business hours, MFA or contacts policy",
    tag="account",
    body=AccountPatch,
    reply=Account,
)
async def patch_account_route(call: Call) -> Account:
    """Only the fields sent change; the audit log gets each change with its old value."""
    body: AccountPatch = call.body
    changes: dict[str, Any] = {
        f: msgspec.to_builtins(getattr(body, f))
        for f in body.__struct_fields__
        if getattr(body, f) is not msgspec.UNSET
    }
    who = call.principal

    async def change(conn: Conn) -> Account:
        await update_account(
            conn, account_id=who.account_id, changes=changes, actor=who, origin=call.origin
        )
        return await _read(conn, who.account_id)

    return await run(call, change)


ROUTES = [get_account_route, patch_account_route]
