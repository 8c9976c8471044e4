"""Business hours of inboxes in ``inbox_business_hours`` (migration 0024), with the inbox's
out-of-office reply."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

from automation.business_hours import DAYS, Schedule, Span
from hub.store.db import Conn


@dataclasses.dataclass(frozen=True)
class BusinessHours:
    inbox_id: str
    schedule: Schedule
    out_of_office: bool
    out_of_office_message: str | None


def _spans_in(spans: list[dict[str, Any]]) -> tuple[Span, ...]:
    return tuple(Span(DAYS.index(s["day"]), s["start"], s["end"]) for s in spans)


def spans_out(spans: tuple[Span, ...]) -> list[dict[str, Any]]:
    return [
        {"day": DAYS[s.day], "start": s.start, "end": s.end}
        for s in sorted(spans, key=lambda s: (s.day, s.start))
    ]


def schedule_of(row: Any) -> Schedule:
    """The schedule of a row with ``inbox_business_hours``' time zone, spans and holidays."""
    return Schedule(row["time_zone"], _spans_in(row["spans"]), frozenset(row["holidays"]))


def _row(row: Any) -> BusinessHours:
    return BusinessHours(
        inbox_id=row["inbox_id"],
        schedule=schedule_of(row),
        out_of_office=row["out_of_office"],
        out_of_office_message=row["out_of_office_message"],
    )


async def get_hours(conn: Conn, account_id: str, inbox_id: str) -> BusinessHours | None:
    row = await conn.fetchrow(
        "SELECT * FROM inbox_business_hours WHERE inbox_id = $1 AND account_id = $2",
        inbox_id,
        account_id,
    )
    return None if row is None else _row(row)


async def hours_of_inboxes(conn: Conn, inbox_ids: list[str]) -> dict[str, BusinessHours]:
    rows = await conn.fetch(
        "SELECT * FROM inbox_business_hours WHERE inbox_id = ANY($1::text[])", inbox_ids
    )
    return {r["inbox_id"]: _row(r) for r in rows}


async def set_hours(
    conn: Conn,
    *,
    account_id: str,
    inbox_id: str,
    schedule: Schedule,
    out_of_office: bool,
    out_of_office_message: str | None,
) -> BusinessHours | None:
    """Save an inbox's hours; ``None`` when the account has no such inbox."""
    row = await conn.fetchrow(
        """INSERT INTO inbox_business_hours (inbox_id, account_id, time_zone, spans, holidays,
                                             out_of_office, out_of_office_message)
           SELECT id, account_id, $3, $4, $5::date[], $6, $7 FROM inboxes
            WHERE id = $1 AND account_id = $2
           ON CONFLICT (inbox_id) DO UPDATE
              SET time_zone = EXCLUDED.time_zone, spans = EXCLUDED.spans,
                  holidays = EXCLUDED.holidays, out_of_office = EXCLUDED.out_of_office,
                  out_of_office_message = EXCLUDED.out_of_office_message, updated_at = now()
           RETURNING *""",
        inbox_id,
        account_id,
        schedule.time_zone,
        spans_out(schedule.spans),
        sorted(schedule.holidays),
        out_of_office,
        out_of_office_message,
    )
    return None if row is None else _row(row)


def holidays_of(texts: list[str]) -> frozenset[date]:
    return frozenset(date.fromisoformat(t) for t in texts)
