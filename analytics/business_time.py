"""Business seconds between two instants, counted in ClickHouse from the inboxes' open intervals.

Why a table: a year of first replies is a million rows, and each needs the open seconds of its
wait. ``business_days`` holds, per scheduled inbox and UTC day the data covers (about 50 inboxes
x 800 days: tens of thousands of rows), the open milliseconds before the day began (``cum``) and
the day's open intervals clipped to it (``starts``, ``ends``). The open milliseconds up to an
instant t are then B(t) = cum + sum of clamp(t - start, 0, end - start) over the intervals of
t's day, and a wait from a to b is open for B(b) - B(a). A report reads a set whole into three
constant arrays (scalar subqueries, ordered by inbox number and day), so each instant is one
array lookup (index: inbox number x days + day) and a sum over its day's one to three intervals:
no join. Two ``ASOF`` joins on a table of intervals, the first design, cost twice as much over
the rows on the benchmark's store (BENCHMARKS.md). Instants before the covered days count from
its first day (B = 0 there), after them up to its last (the sets cover two months ahead).

The intervals come from :meth:`hub.business_hours.Schedule.intervals` (holidays closed, the
clock changes of the inbox's zone as zoneinfo has them). Schedules are read from PostgreSQL at
query time and never stored into the rollups: a set is keyed by a fingerprint of the account's
schedules and the covered months, so a changed schedule (or a range beyond the covered months)
makes a new set on the next report, and the current schedule applies to all history. A set is
written in one insert and then marked with its row count (``meta``); it is complete when that many
rows are there. Two processes making the same set at once write identical rows; the set is read
with one row per (inbox, day) (``LIMIT 1 BY``), so a double write changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import weakref
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from analytics.backend import Backend
from hub.business_hours import Schedule

TABLE = "business_days"
#: what the rows of a set are made of: part of the fingerprint, so a change makes new sets
VERSION = "2"
#: how long a process trusts that a set it found complete is there (a set is dropped only after an
#: hour in which no process found it complete: :func:`ensure`)
TRUST_S = 60.0
DROP_AFTER = "INTERVAL 1 HOUR"
#: the error a report's query raises on a set that is no longer whole
INCOMPLETE = "business_days set incomplete"
DAY_MS = 86_400_000
EPOCH = date(1970, 1, 1)


def statements(database: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.{TABLE} (
                account_id String, fingerprint String, k UInt32, inbox_id String, day Int32,
                cum Int64, starts Array(Int64), ends Array(Int64),
                made_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree(made_at)
              ORDER BY (account_id, fingerprint, k, day)"""
    ]


def _ms(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)


@dataclasses.dataclass(frozen=True)
class DaySet:
    """A complete set: its fingerprint, the inboxes in number order (1-based) and its days."""

    fingerprint: str
    inboxes: list[str]
    first_day: int  # UTC days since 1970-01-01
    days: int


DayRow = tuple[int, str, int, int, list[int], list[int]]


def day_rows(schedules: Mapping[str, Schedule], first: date, last: date) -> list[DayRow]:
    """(inbox number, inbox, UTC day number, open ms before the day, the day's open intervals
    clipped to it: starts, ends) for every UTC day first..last of every schedule."""
    rows: list[DayRow] = []
    d0, d1 = (first - EPOCH).days, (last - EPOCH).days
    for k, inbox in enumerate(sorted(schedules), 1):
        schedule, spans = schedules[inbox], list[tuple[int, int]]()
        local = first - timedelta(days=1)  # local dates around the UTC days
        while local <= last + timedelta(days=1):
            spans.extend((_ms(a), _ms(b)) for a, b in schedule.intervals(local))
            local += timedelta(days=1)
        cum, i = 0, 0
        for day in range(d0, d1 + 1):
            lo, hi = day * DAY_MS, (day + 1) * DAY_MS
            while i < len(spans) and spans[i][1] <= lo:
                cum += spans[i][1] - spans[i][0]
                i += 1
            before, starts, ends = cum, [], []
            j = i
            while j < len(spans) and spans[j][0] < hi:
                a, b = spans[j]
                before += max(0, min(b, lo) - a)  # the part of an interval before midnight
                if min(b, hi) > max(a, lo):
                    starts.append(max(a, lo))
                    ends.append(min(b, hi))
                j += 1
            rows.append((k, inbox, day, before, starts, ends))
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
    stable key for a month)."""
    first = (earliest.replace(day=1) - timedelta(days=1)).replace(day=1)
    ahead = today.replace(day=1) + timedelta(days=62)
    return first, ahead.replace(day=1) - timedelta(days=1)


#: per store: (account, fingerprint) -> when this process last saw the set complete
_seen: weakref.WeakKeyDictionary[Backend, dict[tuple[str, str], float]] = (
    weakref.WeakKeyDictionary()
)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _array(values: list[int]) -> str:
    return "[" + ",".join(map(str, values)) + "]"


async def ensure(
    backend: Backend, account_id: str, schedules: Mapping[str, Schedule], earliest: date
) -> DaySet:
    """A complete set for these schedules, made when missing."""
    first, last = coverage(earliest, datetime.now(UTC).date())
    fp = fingerprint(schedules, first, last)
    found = DaySet(fp, sorted(schedules), (first - EPOCH).days, (last - first).days + 1)
    key, seen = (account_id, fp), _seen.setdefault(backend, {})
    if time.monotonic() - seen.get(key, -TRUST_S) < TRUST_S:
        return found
    db, name = backend.database, f"business_days:{account_id}:{fp}"
    # first the mark of use (when a process last wanted the set; a set is dropped only after an
    # hour without one), then the check that it is complete
    await backend.execute(
        f"INSERT INTO {db}.meta VALUES ({{name:String}}, {{n:String}}, now64(3))",
        {"name": f"{name}:used", "n": ""},
    )
    marked = await backend.query(
        f"""SELECT (SELECT argMax(value, updated_at) FROM {db}.meta WHERE name = {{name:String}}),
                   (SELECT uniqExact(k, day) FROM {db}.{TABLE}
                     WHERE account_id = {{account:String}} AND fingerprint = {{fp:String}})""",
        {"name": name, "account": account_id, "fp": fp},
    )
    # complete: marked with its row count, and that many rows there (a dropped set is remade)
    if not marked or str(marked[0][0]) != str(marked[0][1]):
        rows = day_rows(schedules, first, last)
        if rows:
            # values this module made (ids quoted), so the insert also works where only
            # statements can be sent (the forwarded backend of a split role ``all``)
            values = ",".join(
                f"({_quote(account_id)},{_quote(fp)},{k},{_quote(i)},{d},{c},"
                f"{_array(s)},{_array(e)})"
                for k, i, d, c, s, e in rows
            )
            columns = "account_id, fingerprint, k, inbox_id, day, cum, starts, ends"
            await backend.execute(f"INSERT INTO {db}.{TABLE} ({columns}) VALUES {values}")
        await backend.execute(
            f"INSERT INTO {db}.meta VALUES ({{name:String}}, {{n:String}}, now64(3))",
            {"name": name, "n": str(len(rows))},
        )
        await _drop_unused(backend, account_id, fp)
    seen[key] = time.monotonic()
    return found


def forget(backend: Backend, account_id: str, fingerprint: str) -> None:
    """Stop trusting a set (a report found it incomplete: :data:`INCOMPLETE`)."""
    _seen.setdefault(backend, {}).pop((account_id, fingerprint), None)


async def _drop_unused(backend: Backend, account_id: str, current: str) -> None:
    """Drop the account's other sets that no process has wanted for an hour."""
    db, prefix = backend.database, f"business_days:{account_id}:"
    stale = await backend.query(
        f"""SELECT substring(name, {len(prefix) + 1}, 32) FROM {db}.meta
             WHERE startsWith(name, {{prefix:String}}) AND endsWith(name, ':used')
             GROUP BY name HAVING max(updated_at) < now64(3) - {DROP_AFTER}""",
        {"prefix": prefix},
    )
    gone = [str(r[0]) for r in stale if str(r[0]) != current]
    if gone:
        await backend.execute(
            f"""ALTER TABLE {db}.{TABLE} DELETE
                 WHERE account_id = {{account:String}} AND has({{gone:Array(String)}}, fingerprint)
                SETTINGS mutations_sync = 2""",
            {"account": account_id, "gone": gone},
        )


def constants(db: str) -> str:
    """SQL ``WITH`` items: the set ``{bh_fp:String}`` of ``{account:String}`` as three arrays in
    (inbox number, day) order, one row per pair."""
    rows = f"""(SELECT k, day, cum, starts, ends FROM {db}.{TABLE}
                 WHERE account_id = {{account:String}} AND fingerprint = {{bh_fp:String}}
                 ORDER BY k, day LIMIT 1 BY k, day)"""
    return ", ".join(
        f"(SELECT groupArray({c}) FROM {rows}) AS bh_{c}" for c in ("cum", "starts", "ends")
    )


def business_secs(day_set: DaySet, number: str, start_ms: str, end_ms: str) -> str:
    """SQL: open seconds between two instants (ms) of the inbox numbered ``number`` (1-based;
    the arrays of :func:`constants` in scope)."""

    def upto(t: str) -> str:
        offset = f"toInt64(intDiv({t}, {DAY_MS})) - {day_set.first_day}"
        day = f"least(greatest({offset}, 0), {day_set.days - 1})"
        at = f"(toInt64({number}) - 1) * {day_set.days} + {day} + 1"
        return (
            f"(bh_cum[{at}] + arraySum((s, e) -> least(greatest({t} - s, 0), e - s),"
            f" bh_starts[{at}], bh_ends[{at}]))"
        )

    # a set that is not whole (dropped or cut since this process found it complete) fails the
    # query rather than counting zeros: the report makes the set again (:data:`INCOMPLETE`)
    whole = f"throwIf(length(bh_cum) != {len(day_set.inboxes) * day_set.days}, '{INCOMPLETE}')"
    return f"(greatest({upto(end_ms)} - {upto(start_ms)}, 0) / 1000 + {whole})"
