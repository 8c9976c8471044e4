"""Business seconds between two instants, counted in ClickHouse from the inboxes' open intervals.

Why a table: a year of first replies is a million rows; counting the open seconds of each wait
in Python, or with a per-row array search in SQL, costs seconds. Instead ``business_intervals``
holds every open interval of each scheduled inbox over the days the data covers (about 50 inboxes
x 400 days: tens of thousands of rows), with the open milliseconds before it (``cum``). The open
milliseconds up to an instant t are then B(t) = cum + clamp(t - opens, 0, closes - opens) of the
last interval opening at or before t (an ``ASOF LEFT JOIN``; before the first interval nothing
matches and B is 0), and a wait from a to b is open for B(b) - B(a).

The intervals come from :meth:`hub.business_hours.Schedule.intervals` (holidays closed, the
clock changes of the inbox's zone as zoneinfo has them). Schedules are read from PostgreSQL at
query time and never stored into the rollups: a set of intervals is keyed by a fingerprint of the
account's schedules and the covered months, so a changed schedule (or a range beyond the covered
months) makes a new set on the next report, and the current schedule applies to all history.
A set is written in one insert and then marked with its row count (``meta``); it is complete
when that many rows are there. Two processes making the same set at once write identical rows,
which the ``ASOF`` join reads the same as one copy.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from analytics.backend import Backend
from hub.business_hours import Schedule

TABLE = "business_intervals"
#: what the rows of a set are made of: part of the fingerprint, so a change makes new sets
VERSION = "1"
#: how long a process trusts that a set it saw is there (sets superseded an hour ago are dropped)
TRUST_S = 60.0
DROP_AFTER = "INTERVAL 1 HOUR"


def statements(database: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.{TABLE} (
                account_id String, fingerprint String, inbox_id LowCardinality(String),
                opens Int64, closes Int64, cum Int64,
                made_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree(made_at)
              ORDER BY (account_id, fingerprint, inbox_id, opens)"""
    ]


def _ms(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)


#: every scheduled inbox's first row, before any instant, empty: its instants always find a row
#: (B = 0 before its first interval, and for a schedule never open), so a row that finds none is
#: of an inbox without business hours (``closes`` 0: calendar time); cheaper than a set lookup
SENTINEL = -1


def interval_rows(
    schedules: Mapping[str, Schedule], first: date, last: date
) -> list[tuple[str, int, int, int]]:
    """(inbox, opens ms, closes ms, open ms before opens) for the local dates first..last of
    each schedule, in order, after the inbox's :data:`SENTINEL` row."""
    rows: list[tuple[str, int, int, int]] = []
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    for inbox in sorted(schedules):
        schedule, cum = schedules[inbox], 0
        rows.append((inbox, SENTINEL, SENTINEL, 0))
        for day in days:
            for start, end in schedule.intervals(day):
                opens, closes = _ms(start), _ms(end)
                rows.append((inbox, opens, closes, cum))
                cum += closes - opens
    return rows


def fingerprint(schedules: Mapping[str, Schedule], first: date, last: date) -> str:
    """The same schedules and covered dates give the same text in every process."""
    canon = [
        (
            inbox,
            s.time_zone,
            sorted((p.day, p.start, p.end) for p in s.spans),
            sorted(d.isoformat() for d in s.holidays),
        )
        for inbox, s in sorted(schedules.items())
    ]
    text = repr((VERSION, canon, first.isoformat(), last.isoformat()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def coverage(earliest: date, today: date) -> tuple[date, date]:
    """Whole months from the month before the data's earliest day to two months past today (a
    stable key for a month; a day's local date differs from its UTC date by at most one)."""
    first = (earliest.replace(day=1) - timedelta(days=1)).replace(day=1)
    ahead = today.replace(day=1) + timedelta(days=62)
    return first, ahead.replace(day=1) - timedelta(days=1)


#: per store: (account, fingerprint) -> when this process last saw the set complete
_seen: weakref.WeakKeyDictionary[Backend, dict[tuple[str, str], float]] = (
    weakref.WeakKeyDictionary()
)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def ensure(
    backend: Backend, account_id: str, schedules: Mapping[str, Schedule], earliest: date
) -> str:
    """The fingerprint of a complete interval set for these schedules, made when missing."""
    first, last = coverage(earliest, datetime.now(UTC).date())
    fp = fingerprint(schedules, first, last)
    key, seen = (account_id, fp), _seen.setdefault(backend, {})
    if time.monotonic() - seen.get(key, -TRUST_S) < TRUST_S:
        return fp
    db, name = backend.database, f"business_intervals:{account_id}:{fp}"
    found = await backend.query(
        f"""SELECT (SELECT argMax(value, updated_at) FROM {db}.meta WHERE name = {{name:String}}),
                   (SELECT uniqExact(inbox_id, opens) FROM {db}.{TABLE}
                     WHERE account_id = {{account:String}} AND fingerprint = {{fp:String}})""",
        {"name": name, "account": account_id, "fp": fp},
    )
    # complete: marked with its row count, and that many rows there (a dropped set is remade)
    if not found or str(found[0][0]) != str(found[0][1]):
        rows = interval_rows(schedules, first, last)
        if rows:
            # values this module made (ids quoted), so the insert also works where only
            # statements can be sent (the forwarded backend of a split role ``all``)
            values = ",".join(
                f"({_quote(account_id)},{_quote(fp)},{_quote(i)},{o},{c},{m})"
                for i, o, c, m in rows
            )
            columns = "account_id, fingerprint, inbox_id, opens, closes, cum"
            await backend.execute(f"INSERT INTO {db}.{TABLE} ({columns}) VALUES {values}")
        await backend.execute(
            f"INSERT INTO {db}.meta VALUES ({{name:String}}, {{n:String}}, now64(3))",
            {"name": name, "n": str(len(rows))},
        )
        # sets of this account that no report has made in the last hour are superseded
        await backend.execute(
            f"""ALTER TABLE {db}.{TABLE} DELETE
                 WHERE account_id = {{account:String}} AND fingerprint != {{fp:String}}
                   AND made_at < now64(3) - {DROP_AFTER}""",
            {"account": account_id, "fp": fp},
        )
    seen[key] = time.monotonic()
    return fp


def business_secs(start_ms: str, end_ms: str, a: str, b: str) -> str:
    """SQL: open seconds between two instants (ms), with ``a`` and ``b`` the intervals joined
    at the start and the end."""

    def upto(t: str, iv: str) -> str:
        return f"({iv}.cum + least(greatest({t} - {iv}.opens, 0), {iv}.closes - {iv}.opens))"

    return f"greatest({upto(end_ms, b)} - {upto(start_ms, a)}, 0) / 1000"
