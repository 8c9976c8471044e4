"""The reports: one SQL query layer over the analytics tables, for chDB and a ClickHouse server.

Every report takes a :class:`Scope` (account, time range in UTC, the caller's time zone for hours
and days, the inboxes the caller may see, optional filters). Volume, first and next response and
resolution read the pre-aggregated rows of clean days and the event tables (with ``FINAL``, so an
event written twice counts once) for the rest: see :mod:`analytics.rollups`. Definitions (as in
Chatwoot's reports):

- *first response time*: from a conversation's creation to the first public reply by an agent at
  or after it (a reply stamped earlier, a clock off, is not one);
  conversations created in the range, attributed to the replying agent, the inbox and channel.
- *resolution time*: from the latest opening (creation or reopening) to a resolution; resolutions
  in the range, attributed to the assignee at resolution.
- *volume*: conversations created and messages (inbound; outbound public replies; private notes
  not counted) by channel, inbox, hour of day and day of week in the caller's time zone.
- *next response time*: waits that start in the range (definition in
  :mod:`analytics.service_reports`), from ``next_replies`` for clean days.
- *business hours* (``Scope.schedules``, ``hours=business`` over REST): the first response, next
  response and resolution times count only the seconds in which the conversation's inbox was open
  by its business hours (holidays closed; an inbox without business hours counts every second).
  The schedules are read when the report runs and the current one applies to all history; the
  open seconds are counted in ClickHouse (:mod:`analytics.business_time`).
- *team*: the conversation's team at the reply (first and next response) or the resolution,
  from its latest ``conversation.created``/``.updated`` at or before that moment (no team: key
  ``""``), stored on the pre-aggregated rows when they are built; ``Scope.team_id`` keeps one
  team's rows.

SLA, CSAT and languages: :mod:`analytics.service_reports`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from analytics import business_time, rollups
from analytics.backend import AnalyticsQueryError, Backend
from hub.business_hours import Schedule

GroupBy = Literal["agent", "inbox", "channel", "team"]


@dataclasses.dataclass(frozen=True)
class Scope:
    account_id: str
    since: datetime  # UTC, inclusive
    until: datetime  # UTC, exclusive
    tz: str
    #: the inboxes the caller may see (None: all of the account's)
    inboxes: frozenset[str] | None = None
    inbox_id: str | None = None
    channel: str | None = None
    agent_id: str | None = None
    #: the conversation's team at the reply or resolution (times reports and CSAT only)
    team_id: str | None = None
    #: times reports in business hours: the account's scheduled inboxes (None: calendar time)
    schedules: Mapping[str, Schedule] | None = None


#: ``FINAL`` de-duplicates each month's partition on its own (in parallel, and not at all where a
#: partition has one part): exact here, because an event's partition (its month) follows from
#: ``occurred_at``, part of the sorting key, so an event written twice is always in one partition.
FINAL_SETTINGS = "SETTINGS do_not_merge_across_partitions_select_final = 1"


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _where(
    scope: Scope, agent_column: str | None, alias: str = "", time_column: str = "occurred_at"
) -> tuple[str, dict[str, Any]]:
    """The filter every report shares, with its parameters (never values in the SQL text)."""
    a = f"{alias}." if alias else ""
    parts = [
        f"{a}account_id = {{account:String}}",
        f"{a}{time_column} >= toDateTime64({{since:String}}, 3, 'UTC')",
        f"{a}{time_column} < toDateTime64({{until:String}}, 3, 'UTC')",
    ]
    params: dict[str, Any] = {
        "account": scope.account_id,
        "since": _fmt(scope.since),
        "until": _fmt(scope.until),
        "tz": scope.tz,
    }
    if scope.inboxes is not None:
        parts.append(f"has({{inboxes:Array(String)}}, {a}inbox_id)")
        params["inboxes"] = sorted(scope.inboxes)
    if scope.inbox_id is not None:
        parts.append(f"{a}inbox_id = {{inbox:String}}")
        params["inbox"] = scope.inbox_id
    if scope.channel is not None:
        parts.append(f"{a}channel = {{channel:String}}")
        params["channel"] = scope.channel
    if scope.agent_id is not None and agent_column is not None:
        parts.append(f"{a}{agent_column} = {{agent:String}}")
        params["agent"] = scope.agent_id
    return " AND ".join(parts), params


def _table(backend: Backend, name: str) -> str:
    return f"{backend.database}.{name}"


def _days(scope: Scope) -> tuple[date, date]:
    """The UTC days a scope touches (first and last, both included)."""
    return scope.since.astimezone(UTC).date(), (scope.until - _MS).astimezone(UTC).date()


_MS = timedelta(milliseconds=1)
_QUARTER = timedelta(minutes=15)


def _ceil15(moment: datetime) -> datetime:
    floor = _floor15(moment)
    return floor if floor == moment else floor + _QUARTER


def _floor15(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


async def volume(backend: Backend, scope: Scope) -> dict[str, Any]:
    """Counts by channel, inbox, hour of day (0-23) and day of week (1 Monday - 7 Sunday).

    Whole 15-minute buckets of clean days come from ``volume_15m``; the rest of the range (the
    partial quarters at its edges, today, days written to since their rebuild) from the event
    tables."""
    db = backend.database
    first, last = _days(scope)
    since15, until15 = _ceil15(scope.since), _floor15(scope.until)
    clean, unclean = await rollups.split(backend, first, last)
    if since15 >= until15:  # less than a quarter hour: all raw
        clean, unclean = [], rollups.days_between(first, last)
    where_b, params = _where(scope, None, time_column="bucket")
    where_c, _ = _where(scope, None)
    where_m, more = _where(scope, "agent_id")
    params.update(more, since15=_fmt(since15), until15=_fmt(until15))
    since_q = "toDateTime64({since15:String}, 3, 'UTC')"
    until_q = "toDateTime64({until15:String}, 3, 'UTC')"
    raw = (
        f"occurred_at < {since_q} OR occurred_at >= {until_q}"
        f" OR {rollups.days_condition('occurred_at', unclean)}"
    )
    mine = "agent_id = {agent:String}" if scope.agent_id else "1"
    rows = await backend.query(
        f"""SELECT channel, inbox_id, toHour(t, {{tz:String}}) AS h,
                   toDayOfWeek(t, 0, {{tz:String}}) AS d, sum(c), sum(i), sum(o)
              FROM (SELECT channel, inbox_id, bucket AS t, conversations AS c,
                           if({mine}, messages_inbound, 0) AS i,
                           if({mine}, messages_outbound, 0) AS o
                      FROM {_table(backend, "volume_15m")}
                     WHERE {where_b} AND bucket >= {since_q} AND bucket < {until_q}
                       AND ({rollups.day_runs("day", clean)})
                    UNION ALL
                    SELECT channel, inbox_id, toDateTime(occurred_at, 'UTC'), 1, 0, 0
                      FROM {db}.conversation_events FINAL
                     WHERE {where_c} AND kind = 'created' AND ({raw})
                    UNION ALL
                    SELECT channel, inbox_id, toDateTime(occurred_at, 'UTC'), 0,
                           direction = 'inbound', direction = 'outbound'
                      FROM {db}.messages FINAL
                     WHERE {where_m} AND private = 0 AND ({raw}))
             GROUP BY channel, inbox_id, h, d
            {FINAL_SETTINGS}""",
        params,
    )
    by: dict[str, dict[str, dict[str, int]]] = {
        dim: {} for dim in ("channel", "inbox", "hour", "weekday")
    }
    for channel, inbox, h, d, conversations, inbound, outbound in rows:
        for dim, key in zip(
            ("channel", "inbox", "hour", "weekday"), (channel, inbox, h, d), strict=True
        ):
            cell = by[dim].setdefault(str(key), _empty())
            cell["conversations"] += int(conversations)
            cell["messages_inbound"] += int(inbound)
            cell["messages_outbound"] += int(outbound)
    for dim in ("channel", "inbox"):  # keys with nothing to count (an agent filter) are left out
        by[dim] = {k: v for k, v in by[dim].items() if any(v.values())}
    for dim, size, start in (("hour", 24, 0), ("weekday", 7, 1)):
        by[dim] = {str(i): by[dim].get(str(i), _empty()) for i in range(start, start + size)}
    totals = _empty()
    for cell in by["channel"].values():
        for measure, n in cell.items():
            totals[measure] += n
    return {"totals": totals, **{f"by_{dim}": cells for dim, cells in by.items()}}


def _empty() -> dict[str, int]:
    return {"conversations": 0, "messages_inbound": 0, "messages_outbound": 0}


async def _times(
    backend: Backend,
    scope: Scope,
    group_by: GroupBy,
    *,
    table: str,
    clean: list[date],
    time_column: str,
    agent_column: str,
    raw: str | None,
    span: tuple[str, str],
) -> list[list[Any]]:
    """Rows: key, count, median and p90 seconds, mean seconds; from the pre-aggregated ``table``
    on the ``clean`` days and from ``raw`` (the same rows made from the event tables, for the
    other days; None when there are none). ``span``: SQL for the start and end of each time in
    milliseconds, for business hours."""
    where, params = _where(scope, agent_column, time_column=time_column)
    columns = f"inbox_id, channel, {agent_column} AS agent, team_id AS team, secs"
    schedules = scope.schedules or {}
    if schedules:
        columns += f", {span[0]} AS start_ms, {span[1]} AS end_ms"
    rows = f"""SELECT {columns} FROM {_table(backend, table)}
                WHERE ({rollups.day_runs("day", clean)}) AND {where}"""
    if raw is not None:
        rows += f" UNION ALL SELECT {columns} FROM ({raw}) WHERE {where}"
    team = ""
    if scope.team_id is not None:
        team = "WHERE team = {team:String}"
        params["team"] = scope.team_id
    if not schedules:
        return await _grouped(backend, rows, team, group_by, params)
    earliest = await _earliest(backend, scope.account_id)
    for attempt in (1, 2):
        day_set = await business_time.ensure(backend, scope.account_id, schedules, earliest)
        params.update(bh_fp=day_set.fingerprint, bh_inboxes=day_set.inboxes)
        # the inbox's number in the set (0: no business hours, calendar time)
        number = (
            "transform(toString(inbox_id), {bh_inboxes:Array(String)},"
            f" range(1, {len(day_set.inboxes) + 1}), 0)"
        )
        business = business_time.business_secs(day_set, "r.k", "r.start_ms", "r.end_ms")
        timed = f"""WITH {business_time.constants(backend.database)}
                    SELECT r.inbox_id AS inbox_id, r.channel AS channel, r.agent AS agent,
                           r.team AS team, if(r.k > 0, {business}, r.secs) AS secs
                      FROM (SELECT *, {number} AS k FROM ({rows})) AS r"""
        try:
            return await _grouped(backend, timed, team, group_by, params)
        except AnalyticsQueryError as exc:
            if business_time.INCOMPLETE not in str(exc) or attempt == 2:
                raise
            business_time.forget(backend, scope.account_id, day_set.fingerprint)
    raise AssertionError("unreachable")


async def _grouped(
    backend: Backend, rows: str, team: str, group_by: GroupBy, params: dict[str, Any]
) -> list[list[Any]]:
    return await backend.query(
        # the mean from a sum of whole milliseconds: a float sum's last bit depends on the
        # order the threads add in, and two reports of the same rows could round apart
        f"""SELECT {_KEY[group_by]} AS key, count() AS n,
                   quantilesExact(0.5, 0.9)(secs) AS q,
                   sum(toInt64(round(secs * 1000))) / count() / 1000
              FROM ({rows}) {team}
             GROUP BY key ORDER BY n DESC, key
            {FINAL_SETTINGS}""",
        params,
    )


async def _earliest(backend: Backend, account_id: str) -> date:
    """The UTC day of the account's first conversation event (today when it has none): where
    the business intervals must start."""
    found = await backend.query(
        f"""SELECT toString(toDate(occurred_at, 'UTC'))
              FROM {_table(backend, "conversation_events")}
             WHERE account_id = {{account:String}} ORDER BY occurred_at LIMIT 1""",
        {"account": account_id},
    )
    return date.fromisoformat(found[0][0]) if found else datetime.now(UTC).date()


def _ms_of(column: str) -> str:
    return f"toUnixTimestamp64Milli({column})"


_KEY = {"agent": "agent", "inbox": "inbox_id", "channel": "channel", "team": "team"}
_SINCE = "toDateTime64({since:String}, 3, 'UTC')"
#: the events in the scope's range (the scope's other filters apply to the rows made from them)
_IN_RANGE = (
    "account_id = {account:String}"
    f" AND occurred_at >= {_SINCE} AND occurred_at < toDateTime64({{until:String}}, 3, 'UTC')"
)


async def first_response(backend: Backend, scope: Scope, group_by: GroupBy) -> list[list[Any]]:
    """Rows: key, conversations answered, median, p90 and mean seconds to the first reply.

    Conversations created in the range; their first public agent reply may come on any day
    since: clean days from ``first_replies``, the others (today included) from the event
    tables."""
    first, last = _days(scope)
    clean, unclean = await rollups.split(backend, first, max(last, datetime.now(UTC).date()))
    raw = (
        rollups.first_replies_select(backend.database, unclean, _IN_RANGE, _SINCE)
        if unclean
        else None
    )
    return await _times(
        backend,
        scope,
        group_by,
        table="first_replies",
        clean=clean,
        time_column="created_at",
        agent_column="agent_id",
        raw=raw,
        span=(_ms_of("created_at"), _ms_of("replied_at")),
    )


async def next_response(backend: Backend, scope: Scope, group_by: GroupBy) -> list[list[Any]]:
    """Rows: key, waits answered, median, p90 and mean seconds to the next agent reply
    (definition: :mod:`analytics.service_reports`). Waits that start in the range; their reply
    may come on any day since: clean days from ``next_replies``, the others from the event
    tables."""
    first, last = _days(scope)
    clean, unclean = await rollups.split(backend, first, max(last, datetime.now(UTC).date()))
    raw = rollups.next_replies_select(backend.database, unclean, _IN_RANGE) if unclean else None
    return await _times(
        backend,
        scope,
        group_by,
        table="next_replies",
        clean=clean,
        time_column="asked_at",
        agent_column="agent_id",
        raw=raw,
        span=(_ms_of("asked_at"), _ms_of("replied_at")),
    )


async def resolution(backend: Backend, scope: Scope, group_by: GroupBy) -> list[list[Any]]:
    """Rows: key, resolutions, median, p90 and mean seconds from the latest opening: clean days
    from ``resolutions``, the others from the event tables."""
    first, last = _days(scope)
    clean, unclean = await rollups.split(backend, first, last)
    raw = (
        rollups.resolutions_select(backend.database, rollups.days_condition("occurred_at", unclean))
        if unclean
        else None
    )
    return await _times(
        backend,
        scope,
        group_by,
        table="resolutions",
        clean=clean,
        time_column="occurred_at",
        agent_column="assignee_id",
        raw=raw,
        span=(
            f"{_ms_of('occurred_at')} - toInt64(round(secs * 1000))",
            _ms_of("occurred_at"),
        ),
    )


def _dims(scope: Scope, agent_column: str) -> tuple[str, dict[str, Any]]:
    """The scope's filters but its time range (rows that have a day, not a moment)."""
    where, params = _where(scope, agent_column)
    kept = [part for part in where.split(" AND ") if not part.startswith("occurred_at ")]
    return " AND ".join(kept), params


async def agents(backend: Backend, scope: Scope, now: datetime | None = None) -> list[list[Any]]:
    """Rows: agent, conversations handled (replied in), public replies, resolutions, mean
    handling time in seconds (None without a timed resolution), seconds online, seconds busy.

    Replies and resolutions of clean whole UTC days inside the range come from ``agent_days``
    (conversations handled merge exactly: ``uniqExact`` states); the partial days at the range's
    edges and the days written to since their rebuild from the event tables. Handling time: per
    resolution attributed to the agent (the assignee at it), from the later of the conversation's
    latest opening and its latest assignment to that agent (:func:`rollups.
    agent_resolutions_select`). Presence: :func:`presence`. Agents with presence but no activity
    are listed when the scope is the whole account (no inbox, channel or inbox list)."""
    db = backend.database
    first_whole = scope.since.astimezone(UTC).date()
    if datetime(first_whole.year, first_whole.month, first_whole.day, tzinfo=UTC) < scope.since:
        first_whole += timedelta(days=1)
    end_whole = scope.until.astimezone(UTC).date()  # exclusive
    clean: list[date] = []
    unclean: list[date] = []
    if first_whole < end_whole:
        clean, unclean = await rollups.split(backend, first_whole, end_whole - timedelta(days=1))
    else:
        first_whole = end_whole = scope.until.astimezone(UTC).date()
    where, params = _where(scope, "agent_id")
    dims, _ = _dims(scope, "agent_id")
    edges = (
        f"occurred_at < {rollups._dt(first_whole)} OR occurred_at >= {rollups._dt(end_whole)}"
        f" OR {rollups.days_condition('occurred_at', unclean)}"
    )
    range_cond = (
        "account_id = {account:String}"
        f" AND occurred_at >= {_SINCE} AND occurred_at < toDateTime64({{until:String}}, 3, 'UTC')"
        f" AND ({edges})"
    )
    whole_account = scope.inboxes is None and scope.inbox_id is None and scope.channel is None
    clean_days = rollups.day_runs("day", clean)
    if whole_account:  # the conversations from the per-agent states: far fewer to merge
        rolled = f"""SELECT agent_id AS agent, uniqExactStateIf('', 0) AS c, sum(replies) AS r_n,
                            sum(resolutions) AS s_n, sum(timed_resolutions) AS t_n,
                            sum(handling_s) AS h_s
                       FROM {_table(backend, "agent_days")}
                      WHERE ({clean_days}) AND {dims}
                      GROUP BY agent
                     UNION ALL
                     SELECT agent_id, conversations, 0, 0, 0, 0.
                       FROM {_table(backend, "agent_handled_days")}
                      WHERE ({clean_days}) AND {dims}"""
    else:
        rolled = f"""SELECT agent_id AS agent, conversations AS c, replies AS r_n,
                            resolutions AS s_n, timed_resolutions AS t_n, handling_s AS h_s
                       FROM {_table(backend, "agent_days")}
                      WHERE ({clean_days}) AND {dims}"""
    activity = backend.query(
        f"""SELECT agent, uniqExactMerge(c), sum(r_n), sum(s_n), sum(t_n), sum(h_s)
              FROM ({rolled}
                    UNION ALL
                    SELECT agent_id AS agent, {rollups.AGENT_MEASURES}
                      FROM ({rollups.agent_events_select(db, range_cond)})
                     WHERE {where}
                     GROUP BY agent)
             GROUP BY agent
            {FINAL_SETTINGS}""",
        params,
    )
    rows, online = await asyncio.gather(activity, presence(backend, scope, now))
    found: dict[str, list[Any]] = {}
    for agent, handled, replies, resolved, timed, handling in rows:
        found[str(agent)] = [
            str(agent),
            int(handled),
            int(replies),
            int(resolved),
            float(handling) / int(timed) if int(timed) else None,
            0.0,
            0.0,
        ]
    for agent, online_s, busy_s in online:
        if agent in found:
            found[agent][5:7] = [online_s, busy_s]
        elif whole_account:
            found[agent] = [agent, 0, 0, 0, None, online_s, busy_s]
    return sorted(found.values(), key=lambda r: (-r[2], -r[5], r[0]))


async def presence(
    backend: Backend, scope: Scope, now: datetime | None = None
) -> list[tuple[str, float, float]]:
    """Per agent (``agent.presence_changed``): seconds online and seconds busy within the range.
    A status lasts until the agent's next change, clipped to the range and to ``now`` (an agent
    online now counts up to now); the status at the range's start is the agent's latest change
    before it."""
    cap = min(scope.until, now or datetime.now(UTC))
    if cap <= scope.since:
        return []
    params: dict[str, Any] = {
        "account": scope.account_id,
        "since": _fmt(scope.since),
        "cap": _fmt(cap),
    }
    mine = ""
    if scope.agent_id is not None:
        mine = "AND agent_id = {agent:String}"
        params["agent"] = scope.agent_id
    since = _SINCE
    cap_q = "toDateTime64({cap:String}, 3, 'UTC')"
    table = _table(backend, "agent_presence")
    rows = await backend.query(
        f"""SELECT agent_id, sumIf(secs, s = 'online'), sumIf(secs, s = 'busy')
              FROM (SELECT agent_id, s,
                           dateDiff('millisecond', greatest(t, {since}),
                                    least(leadInFrame(t, 1, {cap_q}) OVER (
                                        PARTITION BY agent_id ORDER BY t, e
                                        ROWS BETWEEN UNBOUNDED PRECEDING
                                                 AND UNBOUNDED FOLLOWING), {cap_q})) / 1000
                               AS secs
                      FROM (SELECT agent_id, argMax(status, (occurred_at, event_id)) AS s,
                                   max(occurred_at) AS t,
                                   argMax(event_id, (occurred_at, event_id)) AS e
                              FROM {table} FINAL
                             WHERE account_id = {{account:String}} AND occurred_at < {since}
                                   {mine}
                             GROUP BY agent_id
                            UNION ALL
                            SELECT agent_id, status, occurred_at, event_id
                              FROM {table} FINAL
                             WHERE account_id = {{account:String}} AND occurred_at >= {since}
                               AND occurred_at < {cap_q} {mine}))
             WHERE secs > 0 AND s != 'offline'
             GROUP BY agent_id
            {FINAL_SETTINGS}""",
        params,
    )
    return [(str(a), float(o), float(b)) for a, o, b in rows]


async def calls(backend: Backend, scope: Scope) -> list[list[Any]]:
    """Rows per inbox: calls, answered, missed, voicemail, talk time (s), mean talk time (s).
    A call counts once it ended; answered means an agent took it, voicemail that it reached the
    voicemail greeting, missed neither."""
    where, params = _where(scope, "agent_id")
    return await backend.query(
        f"""SELECT inbox_id, count() AS n, countIf(answered_call) AS answered,
                   countIf(NOT answered_call AND NOT voicemail) AS missed,
                   countIf(voicemail) AS voicemails,
                   sumIf(talk, answered_call) AS talk_s, avgIf(talk, answered_call)
              FROM (SELECT inbox_id, call_id,
                           countIf(kind = 'answered' AND answered_by = 'agent') > 0
                               AS answered_call,
                           countIf(kind = 'voicemail') > 0 AS voicemail,
                           maxIf(duration_s, kind = 'ended') AS talk
                      FROM {_table(backend, "call_events")} FINAL
                     WHERE {where}
                     GROUP BY inbox_id, call_id
                    HAVING countIf(kind = 'ended') > 0)
             GROUP BY inbox_id ORDER BY n DESC, inbox_id
            {FINAL_SETTINGS}""",
        params,
    )


#: the event tables ``hub analytics verify`` compares with the journal
TABLES = (
    "messages",
    "conversation_events",
    "call_events",
    "ratings",
    "message_languages",
    "sla_events",
    "agent_presence",
)


async def counts(backend: Backend, account_id: str | None = None) -> dict[str, int]:
    """Rows per table (after de-duplication): what ``hub analytics verify`` compares."""
    found: dict[str, int] = {}
    for table in TABLES:
        where = "WHERE account_id = {account:String}" if account_id else ""
        rows = await backend.query(
            f"SELECT count() FROM {_table(backend, table)} FINAL {where}",
            {"account": account_id} if account_id else None,
        )
        found[table] = int(rows[0][0]) if rows else 0
    return found
