"""Reports over REST: volume, languages, first response, next response and resolution times,
SLA compliance, CSAT, agents, calls (from the analytics store, ClickHouse) and live counts (from
PostgreSQL). Every report takes a date range in
an IANA time zone and answers JSON, or CSV with ``format=csv``. A caller sees only the inboxes they
may see; naming another inbox is 404 like any record they may not see. The times reports and CSAT
also take a team (``team_id``: 404 when the account has no such team), still within the caller's
inboxes. First response, next response and resolution take ``hours=business`` to count only the
seconds each inbox was open by its business hours (:mod:`analytics.business_time`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from analytics import reports, service_reports
from analytics.backend import AnalyticsQueryError, AnalyticsUnavailable, Backend
from analytics.part import AnalyticsPart
from gateway.responses import ApiError
from gateway.route import Call, route
from gateway.routes._common import Id, not_found
from hub.authz import Permission
from hub.store.admin_reads import get_team
from hub.store.business_hours import schedules_of_account

#: the longest range one report reads (two years: a year against the year before)
MAX_DAYS = 731
#: the days a report may name
FIRST_DAY, LAST_DAY = date(1900, 1, 2), date(2299, 12, 30)
TimeZone = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")]
Channel = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
Format = Literal["json", "csv"]


class RangeQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``since`` and ``until`` are days in ``tz`` (both included)."""

    since: date
    until: date
    tz: TimeZone = "UTC"
    inbox_id: Id | None = None
    channel: Channel | None = None
    format: Format = "json"


class ReportQuery(RangeQuery, forbid_unknown_fields=True, kw_only=True):
    agent_id: Id | None = None


class SlaQuery(RangeQuery, forbid_unknown_fields=True, kw_only=True):
    group_by: service_reports.SlaGroupBy = "inbox"


class TimesQuery(ReportQuery, forbid_unknown_fields=True, kw_only=True):
    group_by: reports.GroupBy = "inbox"
    #: only the conversations of this team at the reply, resolution or rating (404 for a team
    #: the account does not have); the caller still sees only the inboxes they may see
    team_id: Id | None = None


Hours = Literal["calendar", "business"]


class ResponseTimesQuery(TimesQuery, forbid_unknown_fields=True, kw_only=True):
    #: ``business``: count only the seconds the conversation's inbox was open by its business
    #: hours (holidays closed); an inbox without business hours counts every second
    hours: Hours = "calendar"


class LiveQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    inbox_id: Id | None = None
    format: Format = "json"


class Counts(msgspec.Struct):
    conversations: int
    messages_inbound: int
    messages_outbound: int


class VolumeReport(msgspec.Struct):
    since: date
    until: date
    tz: str
    totals: Counts
    by_channel: dict[str, Counts]
    by_inbox: dict[str, Counts]
    #: hour of day 0-23 in ``tz``
    by_hour: dict[str, Counts]
    #: day of week, 1 Monday - 7 Sunday, in ``tz``
    by_weekday: dict[str, Counts]


class TimesRow(msgspec.Struct):
    key: str
    count: int
    median_s: float
    p90_s: float
    mean_s: float


class TimesReport(msgspec.Struct):
    since: date
    until: date
    tz: str
    group_by: str
    #: ``calendar`` or ``business`` (the seconds the inbox was open)
    hours: str
    rows: list[TimesRow]


class AgentRow(msgspec.Struct):
    agent_id: str
    conversations_handled: int
    replies: int
    resolutions: int
    #: mean seconds from the later of the conversation's latest opening and its latest
    #: assignment to the agent, to the agent's resolution (null: no timed resolution)
    mean_handling_s: float | None
    #: seconds the agent was online, and busy, within the range (up to now)
    online_s: float
    busy_s: float


class AgentsReport(msgspec.Struct):
    since: date
    until: date
    tz: str
    rows: list[AgentRow]


class CallsRow(msgspec.Struct):
    inbox_id: str
    calls: int
    answered: int
    missed: int
    voicemail: int
    talk_time_s: float
    mean_talk_time_s: float


class CallsReport(msgspec.Struct):
    since: date
    until: date
    tz: str
    rows: list[CallsRow]


class LiveRow(msgspec.Struct):
    inbox_id: str
    open: int
    unassigned: int
    pending: int
    snoozed: int


class LiveReport(msgspec.Struct):
    at: datetime
    totals: LiveRow
    rows: list[LiveRow]


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ApiError(422, "unknown_time_zone", f"{name!r} is not an IANA time zone") from exc


def _scope(call: Call, query: RangeQuery) -> reports.Scope:
    zone = _zone(query.tz)
    if query.until < query.since:
        raise ApiError(422, "invalid_range", "until is before since")
    if query.since < FIRST_DAY or query.until > LAST_DAY:
        # beyond ClickHouse's DateTime64 (and, at the ends, Python's dates once shifted by tz)
        raise ApiError(422, "invalid_range", f"reports cover days from {FIRST_DAY} to {LAST_DAY}")
    if (query.until - query.since).days + 1 > MAX_DAYS:
        raise ApiError(422, "range_too_large", f"a report covers at most {MAX_DAYS} days")
    if query.inbox_id is not None:
        call.authorize(query.inbox_id)  # 404 for an inbox the caller may not see
    principal = call.principal

    def utc(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)

    return reports.Scope(
        account_id=principal.account_id,
        since=utc(query.since),
        until=utc(query.until + timedelta(days=1)),
        tz=query.tz,
        inboxes=principal.inboxes,
        inbox_id=query.inbox_id,
        channel=query.channel,
        agent_id=getattr(query, "agent_id", None),
    )


async def _times_scope(call: Call, query: TimesQuery) -> reports.Scope:
    """The scope of a report with a team filter: the team must be one of the account's (404
    otherwise, like an inbox one may not see); its rows stay within the caller's inboxes."""
    scope = _scope(call, query)
    if query.team_id is None:
        return scope
    if await get_team(call.hub.pool, call.principal.account_id, query.team_id) is None:
        raise not_found("team")
    return dataclasses.replace(scope, team_id=query.team_id)


def _backend(call: Call) -> Backend:
    part = call.hub.part("analytics")
    if isinstance(part, AnalyticsPart) and part.store is not None:
        return part.store.backend
    raise ApiError(503, "analytics_unavailable", "analytics is off in this process")


async def _read(call: Call, work: Any) -> Any:
    """A report query; an unreachable store is 503 (retry), a zone ClickHouse lacks is 422."""
    try:
        return await work
    except AnalyticsUnavailable as exc:
        raise ApiError(
            503,
            "analytics_unavailable",
            "the analytics store cannot be reached",
            headers={"Retry-After": "5"},
        ) from exc
    except AnalyticsQueryError as exc:
        if "TIME_ZONE" in str(exc) or "time zone" in str(exc).lower():
            raise ApiError(422, "unknown_time_zone", "the analytics store lacks this zone") from exc
        raise


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _number(value: Any) -> float:
    return round(float(value), 3) if value is not None else 0.0


@route(
    "GET",
    "/api/v1/reports/volume",
    permission=Permission.CONVERSATIONS_READ,
    summary="Conversations and messages by channel, inbox, hour of day and day of week",
    tag="reports",
    csv=True,
    query=ReportQuery,
    reply=VolumeReport,
    errors=(422, 503),
)
async def volume(call: Call) -> Any:
    query: ReportQuery = call.query
    data = await _read(call, reports.volume(_backend(call), _scope(call, query)))
    if query.format == "csv":
        rows = [
            [dim.removeprefix("by_"), key, *cell.values()]
            for dim in ("by_channel", "by_inbox", "by_hour", "by_weekday")
            for key, cell in data[dim].items()
        ]
        header = ["dimension", "key", "conversations", "messages_inbound", "messages_outbound"]
        return _csv("volume", header, rows)
    return msgspec.convert(
        {"since": query.since, "until": query.until, "tz": query.tz, **data}, VolumeReport
    )


_TIMES = {
    "first_response": reports.first_response,
    "next_response": reports.next_response,
    "resolution": reports.resolution,
}


async def _times(call: Call, which: str) -> Any:
    query: ResponseTimesQuery = call.query
    fn = _TIMES[which]
    scope = await _times_scope(call, query)
    if query.hours == "business":  # the schedules as they are now, for the whole range
        schedules = await schedules_of_account(call.hub.pool, call.principal.account_id)
        scope = dataclasses.replace(scope, schedules=schedules)
    found = await _read(call, fn(_backend(call), scope, query.group_by))
    rows = [
        TimesRow(str(k), int(n), _number(q[0]), _number(q[1]), _number(mean))
        for k, n, q, mean in found
    ]
    if query.format == "csv":
        header = [query.group_by, "count", "median_s", "p90_s", "mean_s"]
        name = which if query.hours == "calendar" else f"{which}_business_hours"
        return _csv(name, header, [list(msgspec.structs.astuple(r)) for r in rows])
    return TimesReport(query.since, query.until, query.tz, query.group_by, query.hours, rows)


@route(
    "GET",
    "/api/v1/reports/first_response",
    permission=Permission.CONVERSATIONS_READ,
    summary="Time to the first agent reply (median, p90) by agent, team, inbox or channel",
    tag="reports",
    csv=True,
    query=ResponseTimesQuery,
    reply=TimesReport,
    errors=(404, 422, 503),
)
async def first_response(call: Call) -> Any:
    return await _times(call, "first_response")


@route(
    "GET",
    "/api/v1/reports/next_response",
    permission=Permission.CONVERSATIONS_READ,
    summary="Time from a customer's message after a reply to the next agent reply (median, p90)",
    tag="reports",
    csv=True,
    query=ResponseTimesQuery,
    reply=TimesReport,
    errors=(404, 422, 503),
)
async def next_response(call: Call) -> Any:
    return await _times(call, "next_response")


@route(
    "GET",
    "/api/v1/reports/resolution",
    permission=Permission.CONVERSATIONS_READ,
    summary="Time from opening to resolution (median, p90) by agent, team, inbox or channel",
    tag="reports",
    csv=True,
    query=ResponseTimesQuery,
    reply=TimesReport,
    errors=(404, 422, 503),
)
async def resolution(call: Call) -> Any:
    return await _times(call, "resolution")


@route(
    "GET",
    "/api/v1/reports/agents",
    permission=Permission.CONVERSATIONS_READ,
    summary="Per agent: conversations handled, replies, resolutions, handling time, time online",
    tag="reports",
    csv=True,
    query=ReportQuery,
    reply=AgentsReport,
    errors=(422, 503),
)
async def agents(call: Call) -> Any:
    query: ReportQuery = call.query
    found = await _read(call, reports.agents(_backend(call), _scope(call, query)))
    rows = [
        AgentRow(str(a), int(h), int(r), int(s), None if m is None else round(m, 3),
                 round(on, 3), round(busy, 3))
        for a, h, r, s, m, on, busy in found
    ]  # fmt: skip
    if query.format == "csv":
        header = [
            "agent_id", "conversations_handled", "replies", "resolutions", "mean_handling_s",
            "online_s", "busy_s",
        ]  # fmt: skip
        return _csv("agents", header, [list(msgspec.structs.astuple(r)) for r in rows])
    return AgentsReport(query.since, query.until, query.tz, rows)


@route(
    "GET",
    "/api/v1/reports/calls",
    permission=Permission.CONVERSATIONS_READ,
    summary="Calls per inbox: answered, missed, voicemail, talk time",
    tag="reports",
    csv=True,
    query=ReportQuery,
    reply=CallsReport,
    errors=(422, 503),
)
async def calls(call: Call) -> Any:
    query: ReportQuery = call.query
    found = await _read(call, reports.calls(_backend(call), _scope(call, query)))
    rows = [
        CallsRow(str(i), int(n), int(a), int(m), int(v), _number(t), _number(mean))
        for i, n, a, m, v, t, mean in found
    ]
    if query.format == "csv":
        header = ["inbox_id", "calls", "answered", "missed", "voicemail", "talk_time_s"]
        header.append("mean_talk_time_s")
        return _csv("calls", header, [list(msgspec.structs.astuple(r)) for r in rows])
    return CallsReport(query.since, query.until, query.tz, rows)


@route(
    "GET",
    "/api/v1/reports/live",
    permission=Permission.CONVERSATIONS_READ,
    summary="Conversations open, unassigned, pending and snoozed now, per inbox",
    tag="reports",
    csv=True,
    query=LiveQuery,
    reply=LiveReport,
)
async def live(call: Call) -> Any:
    query: LiveQuery = call.query
    principal = call.principal
    if query.inbox_id is not None:
        call.authorize(query.inbox_id)
    visible = None if principal.inboxes is None else sorted(principal.inboxes)
    found = await call.hub.pool.fetch(
        """SELECT inbox_id,
                  count(*) FILTER (WHERE status = 'open') AS open,
                  count(*) FILTER (WHERE status = 'open' AND assignee_id IS NULL) AS unassigned,
                  count(*) FILTER (WHERE status = 'pending') AS pending,
                  count(*) FILTER (WHERE status = 'snoozed') AS snoozed
             FROM conversations
            WHERE account_id = $1 AND status <> 'resolved'
              AND ($2::text[] IS NULL OR inbox_id = ANY($2::text[]))
              AND ($3::text IS NULL OR inbox_id = $3)
            GROUP BY inbox_id ORDER BY inbox_id""",
        principal.account_id,
        visible,
        query.inbox_id,
    )
    rows = [
        LiveRow(r["inbox_id"], r["open"], r["unassigned"], r["pending"], r["snoozed"])
        for r in found
    ]
    totals = LiveRow(
        "",
        sum(r.open for r in rows),
        sum(r.unassigned for r in rows),
        sum(r.pending for r in rows),
        sum(r.snoozed for r in rows),
    )
    if query.format == "csv":
        header = ["inbox_id", "open", "unassigned", "pending", "snoozed"]
        return _csv("live", header, [list(msgspec.structs.astuple(r)) for r in rows])
    return LiveReport(datetime.now(UTC), totals, rows)


class CsatRow(msgspec.Struct):
    key: str
    ratings: int
    mean_rating: float
    #: percent of ratings that are 4 or 5
    score_pct: float
    #: ratings per score, "1" to "5"
    distribution: dict[str, int]


class CsatReport(msgspec.Struct):
    since: date
    until: date
    tz: str
    group_by: str
    totals: CsatRow
    rows: list[CsatRow]


def _csat_row(key: str, n: int, total: float, satisfied: int, scores: list[int]) -> CsatRow:
    return CsatRow(
        key,
        n,
        round(total / n, 3) if n else 0.0,
        round(100.0 * satisfied / n, 2) if n else 0.0,
        {str(i + 1): c for i, c in enumerate(scores)},
    )


@route(
    "GET",
    "/api/v1/reports/csat",
    permission=Permission.CONVERSATIONS_READ,
    summary="Customer satisfaction: ratings 1-5, their distribution and score (share of 4-5)",
    tag="reports",
    csv=True,
    query=TimesQuery,
    reply=CsatReport,
    errors=(404, 422, 503),
)
async def csat(call: Call) -> Any:
    query: TimesQuery = call.query
    scope = await _times_scope(call, query)
    found = await _read(call, service_reports.csat(_backend(call), scope, query.group_by))
    rows, sums = [], [0.0, 0, 0, 0, 0, 0, 0, 0]
    for key, n, mean, satisfied, *scores in found:
        counts = [int(c) for c in scores]
        rows.append(_csat_row(str(key), int(n), float(mean) * int(n), int(satisfied), counts))
        for i, v in enumerate([int(n), float(mean) * int(n), int(satisfied), *counts]):
            sums[i] += v
    totals = _csat_row("", int(sums[0]), float(sums[1]), int(sums[2]), [int(c) for c in sums[3:]])
    if query.format == "csv":
        header = [query.group_by, "ratings", "mean_rating", "score_pct", "1", "2", "3", "4", "5"]
        lines = [
            [r.key, r.ratings, r.mean_rating, r.score_pct, *r.distribution.values()] for r in rows
        ]
        return _csv("csat", header, lines)
    return CsatReport(query.since, query.until, query.tz, query.group_by, totals, rows)


class SlaRow(msgspec.Struct):
    key: str
    metric: str
    conversations: int
    breached: int
    breaches: int
    warned: int
    compliance_pct: float


class SlaReport(msgspec.Struct):
    since: date
    until: date
    tz: str
    group_by: str
    #: per metric over every key
    totals: list[SlaRow]
    rows: list[SlaRow]


@route(
    "GET",
    "/api/v1/reports/sla",
    permission=Permission.CONVERSATIONS_READ,
    summary="SLA breaches and compliance % per metric, over the conversations created in range",
    tag="reports",
    csv=True,
    query=SlaQuery,
    reply=SlaReport,
    errors=(422, 503),
)
async def sla(call: Call) -> Any:
    query: SlaQuery = call.query
    found = await _read(
        call, service_reports.sla(_backend(call), _scope(call, query), query.group_by)
    )
    rows = [msgspec.convert(r, SlaRow) for r in found]
    totals = []
    for metric in service_reports.METRICS:
        mine = [r for r in rows if r.metric == metric]
        n, b = sum(r.conversations for r in mine), sum(r.breached for r in mine)
        totals.append(
            SlaRow(
                "",
                metric,
                n,
                b,
                sum(r.breaches for r in mine),
                sum(r.warned for r in mine),
                service_reports.compliance(n, b),
            )
        )
    if query.format == "csv":
        header = [query.group_by, "metric", "conversations", "breached", "breaches", "warned"]
        header.append("compliance_pct")
        return _csv("sla", header, [list(msgspec.structs.astuple(r)) for r in rows])
    return SlaReport(query.since, query.until, query.tz, query.group_by, totals, rows)


class LanguageRow(msgspec.Struct):
    language: str
    messages: int
    messages_inbound: int
    messages_outbound: int
    conversations: int


class LanguagesReport(msgspec.Struct):
    since: date
    until: date
    tz: str
    rows: list[LanguageRow]


@route(
    "GET",
    "/api/v1/reports/languages",
    permission=Permission.CONVERSATIONS_READ,
    summary="Messages by the language the AI part detected",
    tag="reports",
    csv=True,
    query=ReportQuery,
    reply=LanguagesReport,
    errors=(422, 503),
)
async def languages(call: Call) -> Any:
    query: ReportQuery = call.query
    found = await _read(call, service_reports.languages(_backend(call), _scope(call, query)))
    rows = [LanguageRow(str(k), int(n), int(i), int(o), int(c)) for k, n, i, o, c in found]
    if query.format == "csv":
        header = ["language", "messages", "messages_inbound", "messages_outbound"]
        header.append("conversations")
        return _csv("languages", header, [list(msgspec.structs.astuple(r)) for r in rows])
    return LanguagesReport(query.since, query.until, query.tz, rows)


ROUTES = [
    volume,
    languages,
    first_response,
    next_response,
    resolution,
    sla,
    csat,
    agents,
    calls,
    live,
]
