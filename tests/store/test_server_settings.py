"""The embedded server runs with the settings the hub's write load needs, the append-mostly
tables are vacuumed by row count, and the event journal is analyzed from a small sample (see
hub/store/embedded.py and migration 0016)."""

from __future__ import annotations

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
