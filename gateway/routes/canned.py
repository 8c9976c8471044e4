"""Canned responses: saved replies agents insert by their short code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from gateway.route import Call, Reply, route
from gateway.routes._common import NOT_BLANK, ListQuery, Search, not_found, path_id, run, whole
from hub.actions.canned import create_canned, delete_canned, update_canned
from hub.authz import Permission
from hub.store.admin_reads import Db, get_canned, list_canned
from hub.store.db import Conn

ShortCode = Annotated[str, msgspec.Meta(pattern=whole("[a-z0-9_-]{1,64}"))]
Content = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=NOT_BLANK)]


class CannedListQuery(ListQuery, forbid_unknown_fields=True):
    #: short codes starting with it, or content containing it (ignoring case)
    q: Search | None = None


class CannedResponse(msgspec.Struct):
    id: str
    short_code: str
    content: str
    created_at: datetime
    updated_at: datetime


class CannedPage(msgspec.Struct):
    data: list[CannedResponse]
    next_cursor: str | None


class CannedNew(msgspec.Struct, forbid_unknown_fields=True):
    """``short_code``: unique in the account; lower-case letters, digits, ``_`` and ``-``."""

    short_code: ShortCode
    content: Content


class CannedPatch(msgspec.Struct, forbid_unknown_fields=True):
    short_code: ShortCode | msgspec.UnsetType = msgspec.UNSET
    content: Content | msgspec.UnsetType = msgspec.UNSET


async def _read(db: Db, account_id: str, canned_id: str) -> CannedResponse:
    row = await get_canned(db, account_id, canned_id)
    if row is None:
        raise not_found("canned response")
    return msgspec.convert(row, CannedResponse)


@route(
    "GET",
    "/api/v1/canned_responses",
    permission=Permission.ACCOUNT_READ,
    summary="List or search the account's canned responses",
    tag="canned_responses",
    query=CannedListQuery,
    reply=CannedPage,
)
async def list_canned_route(call: Call) -> CannedPage:
    q: CannedListQuery = call.query
    items, cursor = await list_canned(
        call.hub.pool, call.principal.account_id, q=q.q, limit=q.limit, cursor=q.cursor
    )
    return CannedPage(msgspec.convert(items, list[CannedResponse]), cursor)


@route(
    "POST",
    "/api/v1/canned_responses",
    permission=Permission.CANNED_MANAGE,
    summary="Create a canned response",
    tag="canned_responses",
    body=CannedNew,
    reply=CannedResponse,
    status=201,
    errors=(409,),
)
async def create_canned_route(call: Call) -> CannedResponse:
    """409 when the account has one with this short code."""
    body: CannedNew = call.body
    who = call.principal

    async def create(conn: Conn) -> CannedResponse:
        canned_id = await create_canned(
            conn,
            account_id=who.account_id,
            short_code=body.short_code,
            content=body.content,
            actor=who,
            origin=call.origin,
        )
        return await _read(conn, who.account_id, canned_id)

    return await run(call, create)


@route(
    "PATCH",
    "/api/v1/canned_responses/{canned_id}",
    permission=Permission.CANNED_MANAGE,
    summary="Change a canned response's short code or content",
    tag="canned_responses",
    body=CannedPatch,
    reply=CannedResponse,
    errors=(409,),
)
async def patch_canned_route(call: Call) -> CannedResponse:
    body: CannedPatch = call.body
    who = call.principal
    canned_id = path_id(call, "canned_id", "canned response")

    async def change(conn: Conn) -> CannedResponse:
        await update_canned(
            conn,
            account_id=who.account_id,
            canned_id=canned_id,
            actor=who,
            origin=call.origin,
            short_code=body.short_code if isinstance(body.short_code, str) else None,
            content=body.content if isinstance(body.content, str) else None,
        )
        return await _read(conn, who.account_id, canned_id)

    return await run(call, change)


@route(
    "DELETE",
    "/api/v1/canned_responses/{canned_id}",
    permission=Permission.CANNED_MANAGE,
    summary="Delete a canned response",
    tag="canned_responses",
    status=204,
)
async def delete_canned_route(call: Call) -> Reply:
    who = call.principal
    await run(
        call,
        delete_canned,
        account_id=who.account_id,
        canned_id=path_id(call, "canned_id", "canned response"),
        actor=who,
        origin=call.origin,
    )
    return Reply(None, 204)


ROUTES = [list_canned_route, create_canned_route, patch_canned_route, delete_canned_route]
