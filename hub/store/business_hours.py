"""Reading the business hours of inboxes (``inbox_business_hours``, migration 0024): a core
read, because automation (out-of-office replies, SLA clocks, rule conditions) and analytics
(response times in business hours) both count time by them. Writing them stays with automation
(``automation.business_hours_store.set_hours``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from hub.business_hours import DAYS, Schedule, Span
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


def hours_row(row: Any) -> BusinessHours:
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
    return None if row is None else hours_row(row)


async def hours_of_inboxes(conn: Conn, inbox_ids: list[str]) -> dict[str, BusinessHours]:
    rows = await conn.fetch(
        "SELECT * FROM inbox_business_hours WHERE inbox_id = ANY($1::text[])", inbox_ids
    )
    return {r["inbox_id"]: hours_row(r) for r in rows}


async def schedules_of_account(
    db: Conn | asyncpg.Pool[Any], account_id: str
) -> dict[str, Schedule]:
    """Every scheduled inbox of an account and its schedule (inboxes without one are absent:
    every second of theirs counts)."""
    rows = await db.fetch(
        """SELECT inbox_id, time_zone, spans, holidays FROM inbox_business_hours
            WHERE account_id = $1 ORDER BY inbox_id""",
        account_id,
    )
    return {r["inbox_id"]: schedule_of(r) for r in rows}
