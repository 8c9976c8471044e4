"""Pre-aggregated report tables, rebuilt per closed UTC day from the de-duplicated event tables.

Why: a year of ten million events read raw (``FINAL``, a time zone per row, a join of two million
conversations) takes more than a second on two cores. Six tables hold what the year-long reports
need, partitioned by month:

- ``volume_15m``: conversations created and messages in and out per 15-minute bucket, inbox,
  channel and agent. Every real UTC offset is a multiple of 15 minutes (+05:30, +05:45, -09:30...),
  so a bucket's hour and weekday in any zone are those of every event in it.
- ``first_replies``: one row per answered conversation, in the partition of its first reply's day.
- ``resolutions``: one row per resolution with its time from the latest opening.
- ``next_replies``: one row per answered wait (a customer's message after an agent's reply, to
  the next agent reply), in the partition of its reply's day.
- ``agent_days``: per UTC day, inbox, channel and agent: public replies, the conversations replied
  in (a ``uniqExact`` state, so days and inboxes merge into exact counts), resolutions and their
  handling time (:func:`agent_resolutions_select`); ``agent_handled_days`` the same conversation
  states per day and agent over all inboxes, for the whole account's report: merging a year of
  states costs per state, and per inbox there are about fifteen times more (a year of 10 million
  events: about 1.1 million states, 0.4 s and more on two busy cores, against 73,000).

The last three carry the conversation's team at the reply or resolution (:func:`with_team`).

How they stay exact under replays: nothing is ever added to them incrementally. A day is rebuilt
whole from the event tables read with ``FINAL`` (so an event written twice counts once), with the
other closed days of its month, into a staging table, and the month is swapped in with ``REPLACE
PARTITION`` (atomic). Month partitions, not day partitions: a year-long report then opens a dozen
parts, not hundreds (each part costs the engine about a millisecond per query). Every write to the
event tables records, after the rows are in, the days it touched (``rollup_marks``); a rebuild
records the time it started reading (``rollup_builds``). A day is *clean* while its last build
started after its last mark. Reports read the pre-aggregated rows for clean days and the event
tables for the rest (today, a day a late or replayed event touched since, the partial 15 minutes at
the edges of a range): the answer is the same either way, only the speed differs. Workers rebuild
closed dirty days every minute (:func:`rebuild_pending`).

A first reply or an opening that arrives after the day that depends on it was rebuilt (events far
out of order, not a replay of the same events) is taken up when that day is next rebuilt.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from analytics.backend import Backend

#: rollup tables: columns, sorting key (ids as LowCardinality: a few hundred inboxes and agents per
#: account, so grouping by them reads dictionary positions; a year's first response by agent went
#: from 0.49 to 0.21 s p50 on 10 million events)
TABLES: dict[str, tuple[str, str]] = {
    "volume_15m": (
        """day Date, account_id LowCardinality(String), bucket DateTime('UTC'),
           inbox_id LowCardinality(String), channel LowCardinality(String),
           agent_id LowCardinality(String), conversations UInt32, messages_inbound UInt32,
           messages_outbound UInt32""",
        "account_id, bucket, inbox_id, agent_id",
    ),
    "first_replies": (
        """day Date, account_id LowCardinality(String), conversation_id String,
           created_at DateTime64(3, 'UTC'), replied_at DateTime64(3, 'UTC'),
           inbox_id LowCardinality(String), channel LowCardinality(String),
           agent_id LowCardinality(String), secs Float64, team_id LowCardinality(String)""",
        "account_id, created_at, conversation_id",
    ),
    "resolutions": (
        """day Date, account_id LowCardinality(String), conversation_id String,
           occurred_at DateTime64(3, 'UTC'), inbox_id LowCardinality(String),
           channel LowCardinality(String), assignee_id LowCardinality(String), secs Float64,
           team_id LowCardinality(String)""",
        "account_id, occurred_at, conversation_id",
    ),
    "next_replies": (
        """day Date, account_id LowCardinality(String), conversation_id String,
           asked_at DateTime64(3, 'UTC'), replied_at DateTime64(3, 'UTC'),
           inbox_id LowCardinality(String), channel LowCardinality(String),
           agent_id LowCardinality(String), secs Float64, team_id LowCardinality(String)""",
        "account_id, asked_at, conversation_id",
    ),
    "agent_days": (
        """day Date, account_id LowCardinality(String), inbox_id LowCardinality(String),
           channel LowCardinality(String), agent_id LowCardinality(String),
           conversations AggregateFunction(uniqExact, String), replies UInt32,
           resolutions UInt32, timed_resolutions UInt32, handling_s Float64""",
        "account_id, day, agent_id, inbox_id",
    ),
    "agent_handled_days": (
        """day Date, account_id LowCardinality(String), agent_id LowCardinality(String),
           conversations AggregateFunction(uniqExact, String)""",
        "account_id, day, agent_id",
    ),
}
#: columns added to rollup tables after stores were made with them (a store that lacks them is
#: rebuilt: :data:`VERSION`)
ADDED: list[tuple[str, str, str]] = [
    ("first_replies", "team_id", "LowCardinality(String)"),
    ("resolutions", "team_id", "LowCardinality(String)"),
]
#: what the rollups hold; a store whose rows were built by another version has every day with
#: events marked at start, so reports read raw until the workers have rebuilt them (2: next
#: replies, and the team on first replies and resolutions; 3: agent_days, agent_handled_days)
VERSION = "3"
COLUMNS = {
    name: ", ".join(re.findall(r"(\w+) [A-Z]\w*(?:\([^)]*\))?,?", columns))
    for name, (columns, _) in TABLES.items()
}
FINAL_SETTINGS = "SETTINGS do_not_merge_across_partitions_select_final = 1"


def statements(database: str) -> list[str]:
    made = [
        f"""CREATE TABLE IF NOT EXISTS {database}.{name} ({columns})
            ENGINE = MergeTree PARTITION BY toYYYYMM(day) ORDER BY ({key})"""
        for name, (columns, key) in TABLES.items()
    ]
    made.extend(
        f"ALTER TABLE {database}.{table} ADD COLUMN IF NOT EXISTS {column} {kind}"
        for table, column, kind in ADDED
    )
    made.append(
        f"""CREATE TABLE IF NOT EXISTS {database}.rollup_marks (
                day Date, marked_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(marked_at) ORDER BY day"""
    )
    made.append(
        f"""CREATE TABLE IF NOT EXISTS {database}.rollup_builds (
                day Date, built_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(built_at) ORDER BY day"""
    )
    return made


def _dt(moment: datetime | date) -> str:
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return (
        f"toDateTime64('{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}', 3, 'UTC')"
    )


def intervals(days: Iterable[date]) -> list[tuple[date, date]]:
    """Days as [start, end) runs of consecutive days."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    return runs


#: runs of days written as ranges ORed together; more become one range and a set of days
MAX_RUNS = 8


def days_condition(column: str, days: Iterable[date]) -> str:
    """SQL true for ``column`` on one of ``days`` (ranges on the sorting key, so parts prune);
    the values are dates this module made, never input."""
    runs = intervals(days)
    if not runs:
        return "0"
    if len(runs) > MAX_RUNS:  # one range and a set: a long OR costs more to plan than to run
        listed = ", ".join(f"'{d.isoformat()}'" for d in sorted(set(days)))
        return (
            f"({column} >= {_dt(runs[0][0])} AND {column} < {_dt(runs[-1][1])}"
            f" AND toDate({column}, 'UTC') IN ({listed}))"
        )
    return " OR ".join(f"({column} >= {_dt(a)} AND {column} < {_dt(b)})" for a, b in runs)


def day_runs(column: str, days: Iterable[date]) -> str:
    """SQL true for a ``Date`` column on one of ``days`` (partition pruning on ``day``)."""
    runs = intervals(days)
    if not runs:
        return "0"
    return " OR ".join(
        f"({column} >= toDate('{a.isoformat()}') AND {column} < toDate('{b.isoformat()}'))"
        for a, b in runs
    )


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def utc_days(moments: Iterable[datetime]) -> set[date]:
    return {(m.astimezone(UTC) if m.tzinfo else m).date() for m in moments}


# --- what the tables hold, from the event tables -------------------------------------------------


def volume_select(db: str, cond: str) -> str:
    """Rows of ``volume_15m`` for the events matching ``cond`` (on ``occurred_at``)."""
    return f"""
        SELECT toDate(bucket) AS day, account_id, bucket, inbox_id, channel, agent_id,
               sum(c) AS conversations, sum(i) AS messages_inbound, sum(o) AS messages_outbound
          FROM (SELECT account_id, toStartOfFifteenMinutes(toDateTime(occurred_at, 'UTC'))
                           AS bucket, inbox_id, channel, '' AS agent_id,
                       1 AS c, 0 AS i, 0 AS o
                  FROM {db}.conversation_events FINAL
                 WHERE kind = 'created' AND ({cond})
                UNION ALL
                SELECT account_id, toStartOfFifteenMinutes(toDateTime(occurred_at, 'UTC')),
                       inbox_id, channel, agent_id, 0,
                       direction = 'inbound', direction = 'outbound'
                  FROM {db}.messages FINAL
                 WHERE private = 0 AND ({cond}))
         GROUP BY account_id, bucket, inbox_id, channel, agent_id"""


def first_replies_select(
    db: str, days: Iterable[date], created_cond: str = "1", created_from: str | None = None
) -> str:
    """Rows of ``first_replies`` for conversations whose first public agent reply (at or after
    the conversation's creation) is on one of ``days``; ``created_cond`` narrows the
    conversations, ``created_from`` (SQL) is a time none of them was created before. No
    ``FINAL``: a minimum does not change when a row is there twice."""
    days = sorted(days)
    reply_cond = days_condition("occurred_at", days)
    window = f"occurred_at < {_dt(days[-1] + timedelta(days=1))}" if days else "0"
    if created_from:
        window += f" AND occurred_at >= {created_from}"
    # replies before the earliest creation among the candidates cannot count: read from there
    # (nothing at all when there is no candidate)
    window += f""" AND occurred_at >= ifNull(
        (SELECT minOrNull(occurred_at) FROM {db}.conversation_events
          WHERE kind = 'created' AND ({created_cond})
            AND conversation_id IN (SELECT conversation_id FROM {db}.messages
                                     WHERE ({reply_cond}) AND direction = 'outbound'
                                       AND private = 0 AND agent_id != '')),
        toDateTime64('2299-01-01 00:00:00', 3, 'UTC'))"""
    answered = f"""SELECT conversation_id FROM {db}.messages
                     WHERE ({reply_cond}) AND direction = 'outbound'
                       AND private = 0 AND agent_id != ''"""
    rows = f"""
        SELECT toDate(replied_at) AS day, account_id, conversation_id, created_at, replied_at,
               inbox_id, channel, agent_id,
               dateDiff('millisecond', created_at, replied_at) / 1000 AS secs
          FROM (SELECT c.account_id AS account_id, c.conversation_id AS conversation_id,
                       any(c.created_at) AS created_at, any(c.inbox_id) AS inbox_id,
                       any(c.channel) AS channel, min(m.occurred_at) AS replied_at,
                       argMin(m.agent_id, m.occurred_at) AS agent_id
                  FROM (SELECT account_id, conversation_id, min(occurred_at) AS created_at,
                               any(inbox_id) AS inbox_id, any(channel) AS channel
                          FROM {db}.conversation_events
                         WHERE kind = 'created' AND ({created_cond})
                           AND conversation_id IN ({answered})
                         GROUP BY account_id, conversation_id) AS c
                 INNER JOIN
                       (SELECT conversation_id, occurred_at, agent_id FROM {db}.messages
                         WHERE direction = 'outbound' AND private = 0 AND agent_id != ''
                           AND {window}
                           AND conversation_id IN ({answered})) AS m
                    ON c.conversation_id = m.conversation_id
                 WHERE m.occurred_at >= c.created_at
                 GROUP BY c.account_id, c.conversation_id)
         WHERE {days_condition("replied_at", days)}"""
    return with_team(db, rows, "replied_at", answered)


def with_team(db: str, inner: str, at: str, ids: str) -> str:
    """``inner`` (rows with ``account_id``, ``conversation_id`` and the moment ``at``, of the
    conversations ``ids`` selects) with ``team_id`` last: the conversation's team at ``at``, from
    its latest ``conversation.created``/``.updated`` at or before it (no team: ``""``). No
    ``FINAL``: an event there twice says the same team."""
    return f"""
        SELECT f.*, t.team_id AS team_id
          FROM ({inner}) AS f
          ASOF LEFT JOIN
               (SELECT account_id, conversation_id, occurred_at, team_id
                  FROM {db}.conversation_events WHERE conversation_id IN ({ids})) AS t
            ON f.account_id = t.account_id AND f.conversation_id = t.conversation_id
           AND f.{at} >= t.occurred_at"""


def next_replies_select(db: str, days: Iterable[date], asked_cond: str = "1") -> str:
    """Rows of ``next_replies`` for the waits answered on one of ``days``: a customer's public
    message whose previous public message in the conversation was an agent's reply starts a wait
    (further customer messages before the next reply are part of it); the wait ends at the next
    public agent reply. ``asked_cond`` narrows the waits (on ``occurred_at``, the customer's
    message). No ``FINAL``: a message there twice is two equal rows side by side in the
    conversation's order, so the second copy follows the first, not a reply, and starts no
    wait; and the next reply after a moment is the same whether it is there once or twice."""
    days = sorted(days)
    end = _dt(days[-1] + timedelta(days=1)) if days else _dt(date(1970, 1, 2))
    replies = "direction = 'outbound' AND private = 0 AND agent_id != ''"
    answered = f"""SELECT conversation_id FROM {db}.messages
                    WHERE ({days_condition("occurred_at", days)}) AND {replies}"""
    rows = f"""
        SELECT toDate(r.occurred_at) AS day, w.account_id AS account_id,
               w.conversation_id AS conversation_id, w.occurred_at AS asked_at,
               r.occurred_at AS replied_at, w.inbox_id AS inbox_id, w.channel AS channel,
               r.agent_id AS agent_id,
               dateDiff('millisecond', w.occurred_at, r.occurred_at) / 1000 AS secs
          FROM (SELECT account_id, conversation_id, occurred_at, inbox_id, channel FROM (
                    SELECT account_id, conversation_id, occurred_at, inbox_id, channel,
                           direction, lagInFrame(direction, 1, '') OVER (
                               PARTITION BY account_id, conversation_id
                               ORDER BY occurred_at, event_id
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS before
                      FROM {db}.messages
                     WHERE occurred_at < {end}
                       AND private = 0 AND (direction = 'inbound' OR agent_id != '')
                       AND conversation_id IN ({answered}))
                 WHERE direction = 'inbound' AND before = 'outbound' AND ({asked_cond})) AS w
          ASOF INNER JOIN
               (SELECT account_id, conversation_id, occurred_at, agent_id FROM {db}.messages
                 WHERE {replies} AND occurred_at < {end}
                   AND conversation_id IN ({answered})) AS r
            ON w.account_id = r.account_id AND w.conversation_id = r.conversation_id
           AND w.occurred_at <= r.occurred_at
         WHERE {days_condition("r.occurred_at", days)}"""
    return with_team(db, rows, "replied_at", answered)


def resolutions_select(db: str, cond: str) -> str:
    """Rows of ``resolutions`` for resolutions matching ``cond``: each from the latest opening
    (creation or reopening) before it."""
    resolved = f"""SELECT conversation_id FROM {db}.conversation_events
                    WHERE kind = 'resolved' AND ({cond})"""
    rows = f"""
        SELECT toDate(r.occurred_at) AS day, r.account_id AS account_id,
               r.conversation_id AS conversation_id, r.occurred_at AS occurred_at,
               r.inbox_id AS inbox_id, r.channel AS channel, r.assignee_id AS assignee_id,
               dateDiff('millisecond', o.opened_at, r.occurred_at) / 1000 AS secs
          FROM (SELECT account_id, conversation_id, occurred_at, inbox_id, channel, assignee_id
                  FROM {db}.conversation_events FINAL
                 WHERE kind = 'resolved' AND ({cond})) AS r
          ASOF INNER JOIN
               (SELECT conversation_id, occurred_at AS opened_at
                  FROM {db}.conversation_events
                 WHERE kind IN ('created', 'reopened')
                   AND conversation_id IN ({resolved})) AS o
            ON r.conversation_id = o.conversation_id AND r.occurred_at >= o.opened_at"""
    return with_team(db, rows, "occurred_at", resolved)


def agent_resolutions_select(db: str, cond: str) -> str:
    """The resolutions matching ``cond`` (on ``occurred_at``) attributed to an agent (the assignee
    at the resolution), each with its handling time: from the later of the conversation's latest
    opening (creation or reopening) and its latest assignment to that agent (a creation or an
    assignment naming them), both at or before the resolution, to the resolution. ``timed`` is 0
    (and ``secs`` 0) when no opening is known. Columns: account_id, occurred_at, inbox_id,
    channel, agent_id, conversation_id, timed, secs. One pass over the conversations' events
    (no ``FINAL``: an opening or assignment there twice is the same moment)."""
    resolved = f"""SELECT conversation_id FROM {db}.conversation_events
                    WHERE kind = 'resolved' AND assignee_id != '' AND ({cond})"""
    return f"""
        SELECT any(r.acc) AS account_id, any(r.resolved_at) AS occurred_at,
               any(r.inbox) AS inbox_id, any(r.ch) AS channel, any(r.agent) AS agent_id,
               any(r.conv) AS conversation_id,
               maxIf(e.at, e.kind IN ('created', 'reopened') AND e.at <= r.resolved_at)
                   AS opened_at,
               maxIf(e.at, e.kind IN ('created', 'assigned') AND e.assignee_id = r.agent
                           AND e.at <= r.resolved_at) AS assigned_at,
               toUInt8(opened_at > toDateTime64(0, 3, 'UTC')) AS timed,
               if(timed, dateDiff('millisecond', greatest(opened_at, assigned_at),
                                  any(r.resolved_at)) / 1000, 0.) AS secs
          FROM (SELECT event_id, account_id AS acc, conversation_id AS conv,
                       occurred_at AS resolved_at, inbox_id AS inbox, channel AS ch,
                       assignee_id AS agent
                  FROM {db}.conversation_events FINAL
                 WHERE kind = 'resolved' AND assignee_id != '' AND ({cond})) AS r
          LEFT JOIN
               (SELECT conversation_id, kind, assignee_id, occurred_at AS at
                  FROM {db}.conversation_events
                 WHERE kind IN ('created', 'reopened', 'assigned')
                   AND conversation_id IN ({resolved})) AS e
            ON r.conv = e.conversation_id
         GROUP BY r.event_id"""


#: the agent report's rows from the event tables: public replies (``reply`` 1) and resolutions
#: attributed to an agent, for the events matching ``cond``
def agent_events_select(db: str, cond: str) -> str:
    """Columns: account_id, occurred_at, inbox_id, channel, agent_id, conversation_id, reply,
    timed, secs (see :func:`agent_resolutions_select`)."""
    return f"""
        SELECT account_id, occurred_at, inbox_id, channel, agent_id, conversation_id,
               toUInt8(1) AS reply, toUInt8(0) AS timed, toFloat64(0) AS secs
          FROM {db}.messages FINAL
         WHERE direction = 'outbound' AND private = 0 AND agent_id != '' AND ({cond})
        UNION ALL
        SELECT account_id, occurred_at, inbox_id, channel, agent_id, conversation_id,
               toUInt8(0), timed, secs
          FROM ({agent_resolutions_select(db, cond)})"""


#: per agent, from :func:`agent_events_select` rows: what ``agent_days`` holds
AGENT_MEASURES = """uniqExactStateIf(conversation_id, reply = 1) AS conversations,
               toUInt32(countIf(reply = 1)) AS replies,
               toUInt32(countIf(reply = 0)) AS resolutions,
               toUInt32(countIf(reply = 0 AND timed = 1)) AS timed_resolutions,
               sumIf(secs, reply = 0 AND timed = 1) AS handling_s"""


def agent_days_select(db: str, cond: str) -> str:
    """Rows of ``agent_days`` for the events matching ``cond`` (on ``occurred_at``)."""
    return f"""
        SELECT toDate(occurred_at, 'UTC') AS day, account_id, inbox_id, channel, agent_id,
               {AGENT_MEASURES}
          FROM ({agent_events_select(db, cond)})
         GROUP BY day, account_id, inbox_id, channel, agent_id"""


def agent_handled_days_select(db: str, cond: str) -> str:
    """Rows of ``agent_handled_days`` (the conversations each agent replied in, per UTC day, all
    inboxes together) for the replies matching ``cond``."""
    return f"""
        SELECT toDate(occurred_at, 'UTC') AS day, account_id, agent_id,
               uniqExactState(conversation_id) AS conversations
          FROM {db}.messages FINAL
         WHERE direction = 'outbound' AND private = 0 AND agent_id != '' AND ({cond})
         GROUP BY day, account_id, agent_id"""


# --- marks, builds, clean days -------------------------------------------------------------------


async def mark(backend: Backend, days: Iterable[date]) -> None:
    """Record that the event tables changed on ``days`` (call after the rows are in)."""
    found = sorted({d.isoformat() for d in days})
    if found:
        await backend.execute(
            f"INSERT INTO {backend.database}.rollup_marks "
            "SELECT arrayJoin({days:Array(Date)}), now64(3)",
            {"days": found},
        )


async def dirty_days(backend: Backend, first: date, last: date) -> set[date]:
    """Days in [first, last] written to since their last rebuild (or never rebuilt). Every other
    day is clean: rebuilt after its last write, or never written (no events at all)."""
    db = backend.database
    rows = await backend.query(
        f"""SELECT toString(m.day) FROM
                (SELECT day, max(marked_at) AS marked FROM {db}.rollup_marks
                  WHERE day BETWEEN {{a:Date}} AND {{z:Date}} GROUP BY day) AS m
                LEFT JOIN
                (SELECT day, max(built_at) AS built FROM {db}.rollup_builds
                  WHERE day BETWEEN {{a:Date}} AND {{z:Date}} GROUP BY day) AS b
                USING day
             WHERE b.built < m.marked""",
        {"a": first.isoformat(), "z": last.isoformat()},
    )
    return {date.fromisoformat(r[0]) for r in rows}


async def split(backend: Backend, first: date, last: date) -> tuple[list[date], list[date]]:
    """The days in [first, last]: (clean, dirty)."""
    dirty = await dirty_days(backend, first, last)
    return [d for d in days_between(first, last) if d not in dirty], sorted(dirty)


async def mark_existing(backend: Backend) -> None:
    """Mark every day that has events when nothing is marked yet (a store written before the
    rollups existed) or the rollups were built by another :data:`VERSION`: those days read raw
    until the workers have rebuilt them."""
    db = backend.database
    found = await backend.query(
        f"SELECT argMax(value, updated_at) FROM {db}.meta WHERE name = 'rollup_version'"
    )
    version = str(found[0][0]) if found and found[0][0] else ""
    marked = int((await backend.query(f"SELECT count() FROM {db}.rollup_marks"))[0][0])
    if not marked or version != VERSION:
        await backend.execute(
            f"""INSERT INTO {db}.rollup_marks
                SELECT DISTINCT toDate(occurred_at, 'UTC'), now64(3) FROM (
                    SELECT occurred_at FROM {db}.messages
                    UNION ALL SELECT occurred_at FROM {db}.conversation_events
                    UNION ALL SELECT occurred_at FROM {db}.call_events)"""
        )
    if version != VERSION:
        await backend.execute(
            f"INSERT INTO {db}.meta VALUES ('rollup_version', {{v:String}}, now64(3))",
            {"v": VERSION},
        )


async def pending(backend: Backend) -> list[date]:
    """Closed UTC days (before today) written to since they were last rebuilt."""
    db = backend.database
    rows = await backend.query(
        f"""SELECT toString(m.day) FROM
                (SELECT day, max(marked_at) AS marked FROM {db}.rollup_marks GROUP BY day) AS m
                LEFT JOIN
                (SELECT day, max(built_at) AS built FROM {db}.rollup_builds GROUP BY day) AS b
                USING day
             WHERE m.day < toDate(now64(3), 'UTC') AND b.built < m.marked
             ORDER BY m.day"""
    )
    return [date.fromisoformat(r[0]) for r in rows]


async def rebuild(backend: Backend, days: Sequence[date], before: date | None = None) -> None:
    """Rebuild the six tables for the months of ``days`` (every day of such a month before
    ``before``, by default today in UTC) from the event tables, and record the builds."""
    db = backend.database
    before = before or datetime.now(UTC).date()
    for year, month in sorted({(d.year, d.month) for d in days}):
        start = date(year, month, 1)
        end = date(year + month // 12, month % 12 + 1, 1)
        chunk = [d for d in days_between(start, end - timedelta(days=1)) if d < before]
        if not chunk:
            continue
        began = (await backend.query("SELECT toString(now64(3))"))[0][0]
        cond = days_condition("occurred_at", chunk)
        selects = {
            "volume_15m": volume_select(db, cond),
            "first_replies": first_replies_select(db, chunk),
            "resolutions": resolutions_select(db, cond),
            "next_replies": next_replies_select(db, chunk),
            "agent_days": agent_days_select(db, cond),
            "agent_handled_days": agent_handled_days_select(db, cond),
        }
        for table, select in selects.items():
            await _swap_in(backend, table, select, start.strftime("%Y%m"))
        await backend.execute(
            f"INSERT INTO {db}.rollup_builds "
            "SELECT arrayJoin({days:Array(Date)}), toDateTime64({began:String}, 3, 'UTC')",
            {"days": [d.isoformat() for d in chunk], "began": began},
        )


async def _swap_in(backend: Backend, table: str, select: str, partition: str) -> None:
    """Fill a staging table, then replace the month's partition with it (atomic; a month with no
    rows loses its partition). A staging table per call, so two rebuilders never mix rows."""
    db = backend.database
    stage = f"{db}.{table}_stage_{uuid.uuid4().hex[:12]}"
    await backend.execute(f"CREATE TABLE {stage} AS {db}.{table}")
    try:
        await backend.execute(f"INSERT INTO {stage} ({COLUMNS[table]}) {select} {FINAL_SETTINGS}")
        if int((await backend.query(f"SELECT count() FROM {stage}"))[0][0]):
            await backend.execute(
                f"ALTER TABLE {db}.{table} REPLACE PARTITION ID '{partition}' FROM {stage}"
            )
        else:
            await backend.execute(f"ALTER TABLE {db}.{table} DROP PARTITION ID '{partition}'")
    finally:
        await backend.execute(f"DROP TABLE IF EXISTS {stage}")


async def rebuild_pending(backend: Backend) -> list[date]:
    """Rebuild every closed day written to since its last build; returns the days."""
    days = await pending(backend)
    if days:
        await rebuild(backend, days)
    return days
