"""Saving the business hours of inboxes in ``inbox_business_hours`` (migration 0024), with the
inbox's out-of-office reply; reading them is the core's (:mod:`hub.store.business_hours`), as
analytics counts time by them too."""

from __future__ import annotations

from datetime import date

from hub.business_hours import Schedule
from hub.store.business_hours import BusinessHours, hours_row, spans_out
from hub.store.db import Conn


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
    return None if row is None else hours_row(row)


def holidays_of(texts: list[str]) -> frozenset[date]:
    return frozenset(date.fromisoformat(t) for t in texts)
