"""Segments: saved filters over contacts (``crm/segments.py``), their count and their contacts.
Whoever reads contacts reads segments, and sees in them only the contacts they may see
(``contacts_by_inbox``); whoever writes contacts saves and removes segments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web

from crm.segments import (
    SegmentFilter,
    count,
    create_segment,
    load_segment,
    member_pages,
    members,
)
from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import Limit, record_id, refusal
from gateway.routes.contacts import Contact, ContactPage, check_attribute_json
from gateway.routes.crm import ExportQuery, stream_contacts
from hub import audit
from hub.actions.contacts import ContactRefused
from hub.authz import Permission
from hub.fields import NO_NUL
from hub.store.db import in_transaction
from hub.store.reads import BadCursor, contact_scope, decode_id_cursor, encode_cursor

SegmentName = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
Channel = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
LabelName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
RecordId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,64}$")]
AttributeKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Scalar = str | int | float | bool


class Filter(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Every part given must hold. ``attributes``: exact values (a defined attribute's must have
    its type); ``channels``: an identity on one of them; ``labels``: a conversation with one of
    them; ``wrote_within_days``: an inbound message in the last N days, through an inbox of
    channel ``wrote_on`` when given."""

    attributes: Annotated[dict[AttributeKey, Scalar], msgspec.Meta(max_length=20)] = {}
    channels: Annotated[list[Channel], msgspec.Meta(max_length=20)] = []
    labels: Annotated[list[LabelName], msgspec.Meta(max_length=20)] = []
    company_id: RecordId | None = None
    wrote_on: Channel | None = None
    wrote_within_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None

    def __post_init__(self) -> None:
        check_attribute_json(dict(self.attributes))


class NewSegment(msgspec.Struct, forbid_unknown_fields=True):
    name: SegmentName
    filter: Filter


class Segment(msgspec.Struct):
    id: str
    name: str
    filter: Filter
    created_at: datetime


class SegmentList(msgspec.Struct):
    data: list[Segment]


class SegmentCount(msgspec.Struct):
    count: int


class MembersQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Limit = 50
    cursor: str | None = None


def _segment(found: dict[str, Any]) -> Segment:
    found = {**found, "filter": msgspec.to_builtins(found["filter"])}
    return msgspec.convert(found, Segment)


async def _load(call: Call) -> dict[str, Any]:
    found = await load_segment(
        call.hub.pool, call.principal.account_id, record_id(call, "segment_id")
    )
    if found is None:
        raise ApiError(404, "not_found", "no such segment")
    return found


async def _scope(call: Call) -> frozenset[str] | None:
    who = call.principal
    return await contact_scope(call.hub.pool, who.account_id, who.inboxes)


@route(
    "GET",
    "/api/v1/segments",
    permission=Permission.CONTACTS_READ,
    summary="The account's segments (saved contact filters)",
    tag="crm",
    reply=SegmentList,
)
async def list_segments_route(call: Call) -> SegmentList:
    rows = await call.hub.pool.fetch(
        """SELECT id, name, filter, created_at FROM segments WHERE account_id = $1
            ORDER BY id LIMIT 1000""",
        call.principal.account_id,
    )
    return SegmentList(data=msgspec.convert([dict(r) for r in rows], list[Segment]))


@route(
    "POST",
    "/api/v1/segments",
    permission=Permission.CONTACTS_WRITE,
    summary="Save a segment",
    tag="crm",
    body=NewSegment,
    reply=Segment,
    status=201,
)
async def create_segment_route(call: Call) -> Reply:
    """A defined attribute's value of the wrong type is 422 ``invalid_attribute``;
    ``wrote_on`` without ``wrote_within_days`` 422 ``invalid_filter``."""
    body: NewSegment = call.body
    wanted = msgspec.convert(msgspec.to_builtins(body.filter), SegmentFilter)
    try:
        segment_id = await in_transaction(
            call.hub.pool, create_segment, call.principal.account_id, body.name, wanted
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc
    found = await load_segment(call.hub.pool, call.principal.account_id, segment_id)
    assert found is not None
    return Reply(_segment(found), status=201)


@route(
    "GET",
    "/api/v1/segments/{segment_id}",
    permission=Permission.CONTACTS_READ,
    summary="One segment",
    tag="crm",
    reply=Segment,
)
async def get_segment_route(call: Call) -> Segment:
    return _segment(await _load(call))


@route(
    "DELETE",
    "/api/v1/segments/{segment_id}",
    permission=Permission.CONTACTS_WRITE,
    summary="Remove a segment (its contacts stay)",
    tag="crm",
    status=204,
)
async def delete_segment_route(call: Call) -> None:
    gone = await call.hub.pool.fetchval(
        "DELETE FROM segments WHERE id = $1 AND account_id = $2 RETURNING id",
        record_id(call, "segment_id"),
        call.principal.account_id,
    )
    if gone is None:
        raise ApiError(404, "not_found", "no such segment")


@route(
    "GET",
    "/api/v1/segments/{segment_id}/count",
    permission=Permission.CONTACTS_READ,
    summary="How many contacts a segment holds now",
    tag="crm",
    reply=SegmentCount,
)
async def count_segment_route(call: Call) -> SegmentCount:
    found = await _load(call)
    n = await count(call.hub.pool, call.principal.account_id, found["filter"], await _scope(call))
    return SegmentCount(count=n)


@route(
    "GET",
    "/api/v1/segments/{segment_id}/contacts",
    permission=Permission.CONTACTS_READ,
    summary="A segment's contacts, newest first",
    tag="crm",
    query=MembersQuery,
    reply=ContactPage,
)
async def segment_contacts_route(call: Call) -> ContactPage:
    q: MembersQuery = call.query
    found = await _load(call)
    try:
        before = decode_id_cursor(q.cursor)
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    rows = await members(
        call.hub.pool,
        call.principal.account_id,
        found["filter"],
        await _scope(call),
        limit=q.limit + 1,
        before=before,
    )
    items = rows[: q.limit]
    cursor = encode_cursor([items[-1]["id"]]) if len(rows) > q.limit else None
    return ContactPage(data=msgspec.convert(items, list[Contact]), next_cursor=cursor)


@route(
    "GET",
    "/api/v1/segments/{segment_id}/export",
    permission=Permission.ACCOUNT_MANAGE,
    summary="A segment's contacts as CSV or a JSON array, streamed",
    tag="crm",
    query=ExportQuery,
    csv=True,
)
async def export_segment_route(call: Call) -> web.StreamResponse:
    """Administrators only, like the whole address book's export, and in the audit log. Oldest
    first; CSV cells that would run as a spreadsheet formula start with ``'``."""
    q: ExportQuery = call.query
    found = await _load(call)  # 404 before the headers go out
    scope = await _scope(call)
    async with call.hub.pool.acquire() as conn:
        await audit.record(
            conn,
            account_id=call.principal.account_id,
            actor=call.principal,
            action="segment.exported",
            object_type="segment",
            object_id=found["id"],
            origin=call.origin,
            details={"format": q.format},
        )
    pages = member_pages(call.hub.pool, call.principal.account_id, found["filter"], scope)
    return await stream_contacts(call, pages, q.format, f"segment-{found['id']}")


ROUTES = [
    list_segments_route,
    create_segment_route,
    get_segment_route,
    delete_segment_route,
    count_segment_route,
    segment_contacts_route,
    export_segment_route,
]
