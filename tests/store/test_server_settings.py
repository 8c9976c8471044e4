"""The embedded server runs with the settings the hub's write load needs, the append-mostly
tables are vacuumed by row count, and the event journal is analyzed from a small sample (see
hub/store/embedded.py and migration 0016)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from hub.store.embedded import EMBEDDED_SETTINGS

pytestmark = pytest.mark.postgres


async def test_the_embedded_server_has_the_hub_settings(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        for name, value in EMBEDDED_SETTINGS.items():
            assert await conn.fetchval("SELECT current_setting($1)", name) == value
    finally:
        await conn.close()


async def test_append_mostly_tables_vacuum_every_50000_rows(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY($1::text[])",
            ["messages", "event_log", "realtime_events"],
        )
    finally:
        await conn.close()
    assert {r["relname"] for r in rows} == {"messages", "event_log", "realtime_events"}
    for row in rows:
        assert "autovacuum_vacuum_insert_threshold=50000" in row["reloptions"]
        assert "autovacuum_vacuum_insert_scale_factor=0" in row["reloptions"]


async def test_the_event_journal_is_analyzed_from_a_small_sample(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    notices: list[str] = []
    conn.add_log_listener(lambda _conn, message: notices.append(str(message)))
    try:
        await conn.execute(
            """INSERT INTO event_log (id, account_id, type, occurred_at, event)
               SELECT 'e' || n, 'a', 't', now(), '{}' FROM generate_series(1, 5000) n"""
        )
        await conn.execute("ANALYZE VERBOSE event_log")
    finally:
        await conn.close()
    # ANALYZE samples 300 x the statistics target rows: 3,000 of the 5,000 (the default, all)
    assert any("3000 rows in sample" in n for n in notices), notices


async def test_a_plan_made_on_an_empty_table_is_replaced_once_it_grows(db_dsn: str) -> None:
    """The trap ``autovacuum_naptime`` closes: a prepared statement's generic plan, made while
    its table was small, scans the whole table until an ANALYZE invalidates it."""
    conn = await asyncpg.connect(db_dsn)

    async def rows(n: int) -> None:
        await conn.execute(
            "INSERT INTO grows SELECT 'k' || n, repeat('x', 200)"
            " FROM generate_series((SELECT count(*) FROM grows) + 1, $1) n",
            n,
        )

    try:
        await conn.execute("CREATE TABLE grows (id text PRIMARY KEY, body text)")
        await rows(300)
        await conn.execute(
            "PREPARE lookup(text[]) AS SELECT g.* FROM unnest($1) AS i(id) JOIN grows g USING (id)"
        )
        for _ in range(6):  # the sixth execution settles on the generic plan
            await conn.execute("EXECUTE lookup('{k1,k2}')")

        async def plan() -> str:
            rows = await conn.fetch("EXPLAIN EXECUTE lookup('{k1,k2}')")
            return "\n".join(r[0] for r in rows)

        await rows(50000)
        assert "Seq Scan on grows" in await plan()  # the stale plan: every row, every call
        for _ in range(80):  # the analyzer wakes every 5 s; at the default minute this fails
            if "Index" in await plan():
                break
            await asyncio.sleep(0.5)
        assert "Index" in await plan(), await plan()
    finally:
        await conn.close()
