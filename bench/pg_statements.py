"""Where PostgreSQL's time goes during a benchmark: ``pg_stat_statements`` in the hub's embedded
server (loaded only for the run that asks, as it must be from the server's start).

The benchmark initialises the data directory first (the hub then finds the server there and keeps
it), resets the counters once the load is about to begin, and reads the top statements after the
hub caught up: execution time, calls, rows, buffers and WAL per statement."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres

_PRELOAD = "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n"

_TOP = """
SELECT round(total_exec_time::numeric, 1)::float8 AS total_ms, calls, rows,
       round(mean_exec_time::numeric, 3)::float8 AS mean_ms,
       round(max_exec_time::numeric, 1)::float8 AS max_ms,
       round(shared_blks_hit::numeric / greatest(calls, 1), 1)::float8 AS buffers_per_call,
       round(wal_bytes / 1e6, 1)::float8 AS wal_mb,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS statement
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY total_exec_time DESC
 LIMIT $1"""


def preload(data_dir: Path) -> None:
    """Create the hub's embedded server in ``data_dir`` with the extension loaded at start."""
    asyncio.run(start_embedded_postgres(data_dir))
    stop_embedded_postgres(data_dir)
    with (data_dir / "postgres" / "postgresql.conf").open("a") as conf:
        conf.write(_PRELOAD)


async def reset(pool: asyncpg.Pool[Any]) -> None:
    await pool.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await pool.execute("SELECT pg_stat_statements_reset()")


async def top(pool: asyncpg.Pool[Any], n: int = 15) -> dict[str, Any]:
    """The ``n`` statements that took the most execution time since :func:`reset`."""
    total = await pool.fetchval(
        "SELECT round(sum(total_exec_time)::numeric, 1) FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    rows = await pool.fetch(_TOP, n)
    return {"total_exec_ms": float(total or 0), "top": [dict(r) for r in rows]}


def table(found: dict[str, Any]) -> str:
    """The statements as a plain-text table for the terminal."""
    lines = [
        f"PostgreSQL execution time: {found['total_exec_ms']:,.0f} ms in all",
        f"{'total ms':>9} {'calls':>7} {'mean ms':>8} {'max ms':>7} {'buffers':>8} {'WAL MB':>7}  "
        "statement",
    ]
    for r in found["top"]:
        lines.append(
            f"{r['total_ms']:>9,.0f} {r['calls']:>7} {r['mean_ms']:>8.2f} {r['max_ms']:>7.1f} "
            f"{r['buffers_per_call']:>8.0f} {r['wal_mb']:>7.1f}  {r['statement'][:90]}"
        )
    return "\n".join(lines)
