"""The audit log of the caller's account: who changed what, when and from where."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from gateway.route import Call, route
from gateway.routes._common import Id, ListQuery, whole
from hub.authz import Permission
from hub.store.admin_reads import list_audit

Word = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=whole("[A-Za-z0-9_.:-]+"))]
# a string, parsed here: converting the query leniently would read a number as a Unix time
Instant = Annotated[str, msgspec.Meta(max_length=64, extra_json_schema={"format": "date-time"})]


class AuditLogQuery(ListQuery, forbid_unknown_fields=True):
    """``since`` (inclusive) and ``until`` (exclusive) are RFC 3339 timestamps with an offset."""

    actor_id: Id | None = None
    action: Word | None = None
    object_type: Word | None = None
    object_id: Id | None = None
    since: Instant | None = None
    until: Instant | None = None

    def __post_init__(self) -> None:
        _utc(self.since)
        _utc(self.until)


def _utc(text: str | None) -> datetime | None:
    """The instant in UTC, as the database compares. One of year 1 or 9999 that has no UTC
    ``datetime`` is before or after every entry anyway."""
    if text is None:
        return None
    try:
        instant = msgspec.convert(text, datetime)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from exc
    if instant.tzinfo is None:
        raise ValueError(f"a timestamp needs an offset (Z or +hh:mm): {text!r}")
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if instant.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


class AuditEntry(msgspec.Struct):
    id: str
    actor_type: Literal["user", "api_token", "system", "anonymous"]
    actor_id: str | None
    action: str
    object_type: str
    object_id: str | None
    client_address: str | None
    user_agent: str | None
    details: dict[str, Any]
    created_at: datetime


class AuditPage(msgspec.Struct):
    data: list[AuditEntry]
    next_cursor: str | None


@route(
    "GET",
    "/api/v1/audit_log",
    permission=Permission.AUDIT_READ,
    summary="The account's audit log, newest first",
    tag="audit",
    query=AuditLogQuery,
    reply=AuditPage,
)
async def list_audit_route(call: Call) -> AuditPage:
    q: AuditLogQuery = call.query
    items, cursor = await list_audit(
        call.hub.pool,
        call.principal.account_id,
        actor_id=q.actor_id,
        action=q.action,
        object_type=q.object_type,
        object_id=q.object_id,
        since=_utc(q.since),
        until=_utc(q.until),
        limit=q.limit,
        cursor=q.cursor,
    )
    return AuditPage(msgspec.convert(items, list[AuditEntry]), cursor)


ROUTES = [list_audit_route]
