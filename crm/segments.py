"""Segments: saved filters over an account's contacts, counted and listed when asked (never
materialised, so a segment is always current).

A filter combines (all must hold): attribute values (``attributes``: exact values, checked
against the account's definitions), an identity on one of ``channels``, a conversation with
one of ``labels``, a ``company_id``, and activity: an inbound message through an inbox of
channel ``wrote_on`` (any channel when not given) in the last ``wrote_within_days`` days.
"Colombo customers who wrote on WhatsApp in the last 30 days" is
``{"attributes": {"city": "Colombo"}, "wrote_on": "whatsapp_cloud", "wrote_within_days": 30}``.

Each part is one indexed condition: attribute containment uses the GIN index on
``contacts.attributes``; activity reads messages by id (ULIDs sort by time, so "the last N days"
is an id range of the primary key), which the planner turns into a semi-join from the recent
messages rather than a probe per contact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from crm.attributes import check, definitions
from hub.actions.contacts import ContactRefused
from hub.ids import new_id
from hub.store.db import Conn
from hub.store.reads import CONTACT_COLUMNS

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class SegmentFilter(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    attributes: dict[str, Any] = {}
    channels: list[str] = []
    labels: list[str] = []
    company_id: str | None = None
    wrote_on: str | None = None
    wrote_within_days: int | None = None


def ulid_floor(moment: datetime) -> str:
    """The smallest ULID of ``moment``'s millisecond: ids at or after it were made since."""
    ms = int(moment.timestamp() * 1000)
    chars = []
    for _ in range(10):
        chars.append(_CROCKFORD[ms % 32])
        ms //= 32
    return "".join(reversed(chars)) + "0" * 16


async def check_filter(conn: Conn | asyncpg.Pool[Any], account_id: str, f: SegmentFilter) -> None:
    """422 for an attribute value of the wrong type, activity days without a bound."""
    check(await definitions(conn, account_id), f.attributes)
    if f.wrote_on is not None and f.wrote_within_days is None:
        raise ContactRefused("invalid_filter", "wrote_on needs wrote_within_days")


def where(
    f: SegmentFilter, args: list[Any], now: datetime | None = None
) -> list[str]:  # the conditions on ``contacts c``; their values appended to ``args``
    conditions: list[str] = []
    if f.attributes:
        args.append(f.attributes)
        conditions.append(f"c.attributes @> ${len(args)}::jsonb")
    if f.company_id is not None:
        args.append(f.company_id)
        conditions.append(f"c.company_id = ${len(args)}")
    if f.channels:
        args.append(f.channels)
        conditions.append(  # the identities' primary key starts (account, channel)
            f"""c.id IN (SELECT i.contact_id FROM contact_identities i
                          WHERE i.account_id = $1 AND i.channel = ANY(${len(args)}::text[]))"""
        )
    if f.labels:
        args.append(f.labels)
        conditions.append(  # the GIN index on conversations.labels
            f"""c.id IN (SELECT v.contact_id FROM conversations v
                          WHERE v.account_id = $1 AND v.labels && ${len(args)}::text[])"""
        )
    if f.wrote_within_days is not None:
        since = (now or datetime.now(UTC)) - timedelta(days=f.wrote_within_days)
        args.append(ulid_floor(since))
        floor = len(args)
        channel = ""
        if f.wrote_on is not None:
            args.append(f.wrote_on)
            channel = f" AND b.channel = ${len(args)}"
        conditions.append(  # $1 is the account (see _query)
            f"""c.id IN (SELECT v.contact_id FROM messages m
                          JOIN conversations v ON v.id = m.conversation_id
                          JOIN inboxes b ON b.id = m.inbox_id
                         WHERE m.id >= ${floor} AND m.direction = 'inbound'
                           AND m.account_id = $1{channel})"""
        )
    return conditions


_SCOPE = """EXISTS (SELECT 1 FROM conversations s
                     WHERE s.contact_id = c.id AND s.inbox_id = ANY(${n}::text[]))"""


def _query(
    account_id: str, f: SegmentFilter, scope: frozenset[str] | None
) -> tuple[list[str], list[Any]]:
    args: list[Any] = [account_id]
    conditions = ["c.account_id = $1", "c.merged_into IS NULL", *where(f, args)]
    if scope is not None:
        args.append(sorted(scope))
        conditions.append(_SCOPE.format(n=len(args)))
    return conditions, args


async def _fetch(pool: asyncpg.Pool[Any], sql: str, args: list[Any]) -> list[asyncpg.Record]:
    """A plan for these very values: a filter's selectivity depends on them entirely (one city
    or another, 1 day or 3650), so a prepared statement's generic plan, which PostgreSQL switches
    to after five runs, would fit one segment and starve the next."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        return list(await conn.fetch(sql, *args))


async def count(
    pool: asyncpg.Pool[Any], account_id: str, f: SegmentFilter, scope: frozenset[str] | None
) -> int:
    conditions, args = _query(account_id, f, scope)
    rows = await _fetch(
        pool, f"SELECT count(*) FROM contacts c WHERE {' AND '.join(conditions)}", args
    )
    found: int = rows[0][0]
    return found


async def members(
    pool: asyncpg.Pool[Any],
    account_id: str,
    f: SegmentFilter,
    scope: frozenset[str] | None,
    *,
    limit: int,
    before: str | None,
) -> list[dict[str, Any]]:
    """Newest first, ``limit`` after the id ``before`` (keyset)."""
    conditions, args = _query(account_id, f, scope)
    if before is not None:
        args.append(before)
        conditions.append(f"c.id < ${len(args)}")
    args.append(limit)
    rows = await _fetch(
        pool,
        f"""SELECT {CONTACT_COLUMNS} FROM contacts c WHERE {" AND ".join(conditions)}
             ORDER BY c.id DESC LIMIT ${len(args)}""",
        args,
    )
    return [dict(r) for r in rows]


async def member_pages(
    pool: asyncpg.Pool[Any],
    account_id: str,
    f: SegmentFilter,
    scope: frozenset[str] | None,
    page: int = 500,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every member, oldest first, ``page`` at a time, for an export: keyset paging, so no
    transaction stays open while the client reads, and a segment of any size streams in
    bounded memory."""
    after = ""
    while True:
        conditions, args = _query(account_id, f, scope)
        args.append(after)
        conditions.append(f"c.id > ${len(args)}")
        args.append(page)
        rows = await _fetch(
            pool,
            f"""SELECT {CONTACT_COLUMNS} FROM contacts c WHERE {" AND ".join(conditions)}
                 ORDER BY c.id LIMIT ${len(args)}""",
            args,
        )
        if not rows:
            return
        yield [dict(r) for r in rows]
        if len(rows) < page:
            return
        after = rows[-1]["id"]


async def create_segment(conn: Conn, account_id: str, name: str, f: SegmentFilter) -> str:
    await check_filter(conn, account_id, f)
    segment_id = new_id()
    await conn.execute(
        "INSERT INTO segments (id, account_id, name, filter) VALUES ($1, $2, $3, $4)",
        segment_id,
        account_id,
        name,
        msgspec.to_builtins(f),
    )
    return segment_id


async def load_segment(
    conn: Conn | asyncpg.Pool[Any], account_id: str, segment_id: str
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT id, name, filter, created_at FROM segments WHERE id = $1 AND account_id = $2",
        segment_id,
        account_id,
    )
    if row is None:
        return None
    found = dict(row)
    found["filter"] = msgspec.convert(found["filter"], SegmentFilter)
    return found
