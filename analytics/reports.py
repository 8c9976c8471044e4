"""The reports: one SQL query layer over the analytics tables, for chDB and a ClickHouse server.

Every report takes a :class:`Scope` (account, time range in UTC, the caller's time zone for hours
and days, the inboxes the caller may see, optional filters) and reads with ``FINAL`` so an event
written twice counts once. Definitions (as in Chatwoot's reports):

- *first response time*: from a conversation's creation to the first public reply by an agent;
  conversations created in the range, attributed to the replying agent, the inbox and channel.
- *resolution time*: from the latest opening (creation or reopening) to a resolution; resolutions
  in the range, attributed to the assignee at resolution.
- *volume*: conversations created and messages (inbound; outbound public replies; private notes
  not counted) by channel, inbox, hour of day and day of week in the caller's time zone.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

from analytics.backend import Backend

GroupBy = Literal["agent", "inbox", "channel"]


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


#: ``FINAL`` de-duplicates each month's partition on its own (in parallel, and not at all where a
#: partition has one part): exact here, because an event's partition (its month) follows from
#: ``occurred_at``, part of the sorting key, so an event written twice is always in one partition.
FINAL_SETTINGS = "SETTINGS do_not_merge_across_partitions_select_final = 1"


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _where(scope: Scope, agent_column: str | None, alias: str = "") -> tuple[str, dict[str, Any]]:
    """The filter every report shares, with its parameters (never values in the SQL text)."""
    a = f"{alias}." if alias else ""
    parts = [
        f"{a}account_id = {{account:String}}",
        f"{a}occurred_at >= toDateTime64({{since:String}}, 3, 'UTC')",
        f"{a}occurred_at < toDateTime64({{until:String}}, 3, 'UTC')",
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


async def volume(backend: Backend, scope: Scope) -> dict[str, Any]:
    """Counts by channel, inbox, hour of day (0-23) and day of week (1 Monday - 7 Sunday)."""
    where, params = _where(scope, None)
    conversations = await backend.query(
        f"""SELECT channel, inbox_id, toHour(occurred_at, {{tz:String}}) AS h,
                   toDayOfWeek(occurred_at, 0, {{tz:String}}) AS d, count()
              FROM {_table(backend, "conversation_events")} FINAL
             WHERE {where} AND kind = 'created'
             GROUP BY channel, inbox_id, h, d
            {FINAL_SETTINGS}""",
        params,
    )
    where, params = _where(scope, "agent_id")
    messages = await backend.query(
        f"""SELECT channel, inbox_id, toHour(occurred_at, {{tz:String}}) AS h,
                   toDayOfWeek(occurred_at, 0, {{tz:String}}) AS d, direction, count()
              FROM {_table(backend, "messages")} FINAL
             WHERE {where} AND private = 0
             GROUP BY channel, inbox_id, h, d, direction
            {FINAL_SETTINGS}""",
        params,
    )
    by: dict[str, dict[str, dict[str, int]]] = {
        dim: {} for dim in ("channel", "inbox", "hour", "weekday")
    }

    def add(keys: tuple[str, str, int, int], measure: str, n: int) -> None:
        for dim, key in zip(("channel", "inbox", "hour", "weekday"), keys, strict=True):
            cell = by[dim].setdefault(str(key), _empty())
            cell[measure] += n

    for channel, inbox, h, d, n in conversations:
        add((channel, inbox, h, d), "conversations", int(n))
    for channel, inbox, h, d, direction, n in messages:
        add((channel, inbox, h, d), f"messages_{direction}", int(n))
    for dim, size, start in (("hour", 24, 0), ("weekday", 7, 1)):
        by[dim] = {str(i): by[dim].get(str(i), _empty()) for i in range(start, start + size)}
    totals = _empty()
    for cell in by["channel"].values():
        for measure, n in cell.items():
            totals[measure] += n
    return {"totals": totals, **{f"by_{dim}": cells for dim, cells in by.items()}}


def _empty() -> dict[str, int]:
    return {"conversations": 0, "messages_inbound": 0, "messages_outbound": 0}


_KEY = {"agent": "agent", "inbox": "inbox_id", "channel": "channel"}


async def first_response(backend: Backend, scope: Scope, group_by: GroupBy) -> list[list[Any]]:
    """Rows: key, conversations answered, median, p90 and mean seconds to the first reply."""
    where_c, params = _where(scope, None)
    agent = "AND r.agent = {agent:String}" if scope.agent_id else ""
    if scope.agent_id:
        params["agent"] = scope.agent_id
    key = _KEY[group_by]
    return await backend.query(
        f"""SELECT {key} AS key, count() AS n,
                   quantilesExact(0.5, 0.9)(secs) AS q, avg(secs)
              FROM (SELECT c.inbox_id AS inbox_id, c.channel AS channel, r.agent AS agent,
                           dateDiff('millisecond', c.created_at, r.replied_at) / 1000 AS secs
                      FROM (SELECT conversation_id, occurred_at AS created_at, inbox_id, channel
                              FROM {_table(backend, "conversation_events")} FINAL
                             WHERE {where_c} AND kind = 'created') AS c
                      INNER JOIN
                           (SELECT conversation_id, min(occurred_at) AS replied_at,
                                   argMin(agent_id, occurred_at) AS agent
                              FROM {_table(backend, "messages")} FINAL
                           PREWHERE account_id = {{account:String}}
                                AND occurred_at >= toDateTime64({{since:String}}, 3, 'UTC')
                                AND direction = 'outbound'
                             WHERE private = 0 AND agent_id != ''
                             GROUP BY conversation_id) AS r
                      USING conversation_id
                     WHERE r.replied_at >= c.created_at {agent})
             GROUP BY key ORDER BY n DESC, key
            {FINAL_SETTINGS}""",
        params,
    )


async def resolution(backend: Backend, scope: Scope, group_by: GroupBy) -> list[list[Any]]:
    """Rows: key, resolutions, median, p90 and mean seconds from the latest opening."""
    where, params = _where(scope, "assignee_id")
    key = {"agent": "assignee_id", "inbox": "inbox_id", "channel": "channel"}[group_by]
    return await backend.query(
        f"""SELECT {key} AS key, count() AS n, quantilesExact(0.5, 0.9)(secs) AS q, avg(secs)
              FROM (SELECT r.inbox_id AS inbox_id, r.channel AS channel,
                           r.assignee_id AS assignee_id,
                           dateDiff('millisecond', o.opened_at, r.occurred_at) / 1000 AS secs
                      FROM (SELECT conversation_id, occurred_at, inbox_id, channel, assignee_id
                              FROM {_table(backend, "conversation_events")} FINAL
                             WHERE {where} AND kind = 'resolved') AS r
                      ASOF INNER JOIN
                           (SELECT conversation_id, occurred_at AS opened_at
                              FROM {_table(backend, "conversation_events")} FINAL
                             WHERE account_id = {{account:String}}
                               AND occurred_at < toDateTime64({{until:String}}, 3, 'UTC')
                               AND kind IN ('created', 'reopened')) AS o
                        ON r.conversation_id = o.conversation_id
                       AND r.occurred_at >= o.opened_at)
             GROUP BY key ORDER BY n DESC, key
            {FINAL_SETTINGS}""",
        params,
    )


async def agents(backend: Backend, scope: Scope) -> list[list[Any]]:
    """Rows: agent, conversations handled (replied in), public replies, resolutions."""
    where_m, params = _where(scope, "agent_id")
    where_c, _ = _where(scope, "assignee_id")
    return await backend.query(
        f"""SELECT agent, sum(handled), sum(replies), sum(resolved) FROM (
                SELECT agent_id AS agent, uniqExact(conversation_id) AS handled,
                       count() AS replies, 0 AS resolved
                  FROM {_table(backend, "messages")} FINAL
                 WHERE {where_m} AND direction = 'outbound' AND private = 0 AND agent_id != ''
                 GROUP BY agent
                UNION ALL
                SELECT assignee_id AS agent, 0, 0, count()
                  FROM {_table(backend, "conversation_events")} FINAL
                 WHERE {where_c} AND kind = 'resolved' AND assignee_id != ''
                 GROUP BY agent)
             GROUP BY agent ORDER BY 3 DESC, agent
            {FINAL_SETTINGS}""",
        params,
    )


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


async def counts(backend: Backend, account_id: str | None = None) -> dict[str, int]:
    """Rows per table (after de-duplication): what ``hub analytics verify`` compares."""
    found: dict[str, int] = {}
    for table in ("messages", "conversation_events", "call_events"):
        where = "WHERE account_id = {account:String}" if account_id else ""
        rows = await backend.query(
            f"SELECT count() FROM {_table(backend, table)} FINAL {where}",
            {"account": account_id} if account_id else None,
        )
        found[table] = int(rows[0][0]) if rows else 0
    return found
