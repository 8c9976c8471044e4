"""Business hours and the out-of-office reply of an inbox (administrators; docs/automation.md)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

from automation.business_hours_store import set_hours
from gateway.responses import ApiError
from gateway.route import Call, route
from gateway.routes._common import not_found, path_id, run
from hub.actions.accounts import audit_object
from hub.authz import Permission
from hub.business_hours import DAYS, Schedule, ScheduleInvalid, parse_span
from hub.store.business_hours import BusinessHours, get_hours
from hub.store.db import Conn

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Clock = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-4]):[0-5]\d$")]


class OpenSpan(msgspec.Struct, forbid_unknown_fields=True):
    """Open from ``open`` to ``close`` (local time, ``24:00`` for the end of the day)."""

    day: Day
    open: Clock
    close: Clock


class Hours(msgspec.Struct, forbid_unknown_fields=True):
    """``time_zone``: an IANA name (``Asia/Colombo``); ``holidays``: local dates, closed all
    day; ``out_of_office_message``: the reply a customer gets when writing while closed (once
    per conversation and closed period) when ``out_of_office`` is on."""

    time_zone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    spans: Annotated[list[OpenSpan], msgspec.Meta(max_length=100)]
    holidays: Annotated[list[date], msgspec.Meta(max_length=1000)] = []
    out_of_office: bool = False
    out_of_office_message: Annotated[str, msgspec.Meta(max_length=4096)] | None = None


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _out(found: BusinessHours) -> Hours:
    s = found.schedule
    return Hours(
        time_zone=s.time_zone,
        spans=[
            OpenSpan(day=DAYS[x.day], open=_clock(x.start), close=_clock(x.end))  # type: ignore[arg-type]
            for x in sorted(s.spans, key=lambda x: (x.day, x.start))
        ],
        holidays=sorted(s.holidays),
        out_of_office=found.out_of_office,
        out_of_office_message=found.out_of_office_message,
    )


def _schedule(body: Hours) -> Schedule:
    try:
        spans = tuple(parse_span(s.day, s.open, s.close, i) for i, s in enumerate(body.spans))
        return Schedule(body.time_zone, spans, frozenset(body.holidays))
    except ScheduleInvalid as exc:
        raise ApiError(422, "invalid_hours", exc.message, {"field": exc.path}) from exc


@route(
    "GET",
    "/api/v1/inboxes/{inbox_id}/business_hours",
    permission=Permission.INBOXES_MANAGE,
    summary="The inbox's business hours and out-of-office reply (404 when it has none)",
    tag="automation",
    reply=Hours,
)
async def get_hours_route(call: Call) -> Hours:
    inbox_id = path_id(call, "inbox_id", "inbox")
    found = await run(call, get_hours, call.principal.account_id, inbox_id)
    if found is None:
        raise not_found("business hours")
    return _out(found)


@route(
    "PUT",
    "/api/v1/inboxes/{inbox_id}/business_hours",
    permission=Permission.INBOXES_MANAGE,
    summary="Set the inbox's business hours and out-of-office reply",
    tag="automation",
    body=Hours,
    reply=Hours,
)
async def put_hours_route(call: Call) -> Hours:
    body: Hours = call.body
    who = call.principal
    inbox_id = path_id(call, "inbox_id", "inbox")
    schedule = _schedule(body)
    message = (body.out_of_office_message or "").strip() or None
    if body.out_of_office and message is None:
        raise ApiError(
            422,
            "invalid_hours",
            "an out-of-office reply needs its message",
            {"field": "out_of_office_message"},
        )

    async def save(conn: Conn) -> BusinessHours:
        made = await set_hours(
            conn, account_id=who.account_id, inbox_id=inbox_id, schedule=schedule,
            out_of_office=body.out_of_office, out_of_office_message=message,
        )  # fmt: skip
        if made is None:
            raise not_found("inbox")
        await audit_object(
            conn, "inbox", who.account_id, inbox_id, "inbox.business_hours_set", who,
            call.origin, time_zone=schedule.time_zone, out_of_office=body.out_of_office,
        )  # fmt: skip
        return made

    return _out(await run(call, save))


ROUTES = [get_hours_route, put_hours_route]
