"""The same reports on PostgreSQL alone, for comparison with chDB (BENCHMARKS.md, issue 25).

    python -m bench.analytics.postgres --events 10000000 --out bench/results/analytics-postgres.json

Loads the events of ``bench.analytics.run.generate`` (same seed: the same conversations and
messages) into the hub's own tables (``conversations``, ``messages``, ``inboxes`` of the hub's
migrations) on the embedded PostgreSQL, adds the two indexes a PostgreSQL-only deployment would add
for reports (``(account_id, created_at)`` on both tables), ``VACUUM ANALYZE``, then times the same
six report questions as ``bench.analytics.run`` as plain SQL. PostgreSQL keeps no resolution
history in its tables (that is the event journal's), so resolution time is taken from a resolved
conversation's ``updated_at``: cheaper than what analytics computes, which favours PostgreSQL.
Foreign-key triggers are off during the load (``session_replication_role = replica``: the bench
loads no contacts or agents) and the secondary indexes are dropped and made again after it (all but
``conversations_one_open``, the one-open-conversation-per-contact rule, which the generated data
does not keep and no report reads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.analytics.run import CHANNELS, _p95, generate
from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres
from hub.store.migrate import migrate

YEAR = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
MONTH = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
TZ = "Asia/Colombo"

VOLUME = """
SELECT i.channel, x.inbox_id, x.h, x.d, sum(x.c), sum(x.i), sum(x.o) FROM (
    SELECT inbox_id, extract(hour FROM created_at AT TIME ZONE $4) AS h,
           extract(isodow FROM created_at AT TIME ZONE $4) AS d, 1 AS c, 0 AS i, 0 AS o
      FROM conversations WHERE account_id = $1 AND created_at >= $2 AND created_at < $3
    UNION ALL
    SELECT inbox_id, extract(hour FROM created_at AT TIME ZONE $4),
           extract(isodow FROM created_at AT TIME ZONE $4), 0,
           (direction = 'inbound')::int, (direction = 'outbound')::int
      FROM messages
     WHERE account_id = $1 AND created_at >= $2 AND created_at < $3 AND NOT private) AS x
  JOIN inboxes i ON i.id = x.inbox_id
 GROUP BY 1, 2, 3, 4"""

FIRST_RESPONSE = """
SELECT {key} AS key, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY secs),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY secs), avg(secs)
  FROM (SELECT DISTINCT ON (c.id) c.id, c.inbox_id, m.sender_id AS agent,
               extract(epoch FROM m.created_at - c.created_at) AS secs
          FROM conversations c
          JOIN messages m ON m.conversation_id = c.id AND m.direction = 'outbound'
                         AND NOT m.private AND m.sender_type = 'agent'
                         AND m.created_at >= c.created_at
         WHERE c.account_id = $1 AND c.created_at >= $2 AND c.created_at < $3
         ORDER BY c.id, m.created_at) AS x
 GROUP BY 1 ORDER BY 2 DESC"""

RESOLUTION = """
SELECT inbox_id, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY secs),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY secs), avg(secs)
  FROM (SELECT inbox_id, extract(epoch FROM updated_at - created_at) AS secs
          FROM conversations
         WHERE account_id = $1 AND status = 'resolved'
           AND updated_at >= $2 AND updated_at < $3) AS x
 GROUP BY 1 ORDER BY 2 DESC"""

AGENTS = """
SELECT agent, sum(handled), sum(replies), sum(resolved) FROM (
    SELECT sender_id AS agent, count(DISTINCT conversation_id) AS handled, count(*) AS replies,
           0 AS resolved
      FROM messages
     WHERE account_id = $1 AND created_at >= $2 AND created_at < $3
       AND direction = 'outbound' AND NOT private AND sender_type = 'agent'
     GROUP BY 1
    UNION ALL
    SELECT assignee_id, 0, 0, count(*) FROM conversations
     WHERE account_id = $1 AND status = 'resolved' AND updated_at >= $2 AND updated_at < $3
     GROUP BY 1) AS x
 GROUP BY 1 ORDER BY 3 DESC"""


def _records(events: int) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """(conversations, messages) rows for the hub's tables, chunk by chunk."""
    for rows in generate(events):
        conversations: dict[str, list[Any]] = {}
        for c in rows.conversation_events:
            if c.kind == "created":
                conversations[c.conversation_id] = [
                    c.conversation_id, "acc", c.inbox_id, c.contact_id, "open", None,
                    c.occurred_at, c.occurred_at, c.occurred_at,
                ]  # fmt: skip
            else:  # resolved: the conversation row as it is afterwards
                row = conversations[c.conversation_id]
                row[4], row[5], row[7], row[8] = (
                    "resolved",
                    c.assignee_id,
                    c.occurred_at,
                    c.occurred_at,
                )
        messages = [
            (
                m.message_id,
                "acc",
                m.conversation_id,
                m.inbox_id,
                m.direction,
                bool(m.private),
                "agent" if m.direction == "outbound" else "contact",
                m.agent_id or m.contact_id,
                "sent" if m.direction == "outbound" else "received",
                m.occurred_at,
                m.occurred_at,
            )
            for m in rows.messages
        ]
        yield [tuple(r) for r in conversations.values()], messages


async def load(conn: asyncpg.Connection[Any], events: int) -> dict[str, float]:
    await migrate(conn)
    await conn.execute("INSERT INTO accounts (id, name) VALUES ('acc', 'bench')")
    await conn.executemany(
        "INSERT INTO inboxes (id, account_id, channel, name) VALUES ($1, 'acc', $2, $1)",
        [(f"inbox-{i:02d}", CHANNELS[i % 5]) for i in range(50)],
    )
    await conn.execute("SET session_replication_role = replica")
    # a bulk load: the secondary indexes go, and come back after the load
    indexes = await conn.fetch(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.tablename IN ('messages', 'conversations') AND i.indexname NOT LIKE '%_pkey'"""
    )
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["indexname"]}"')
    began, n = time.perf_counter(), 0
    for conversations, messages in _records(events):
        await conn.copy_records_to_table(
            "conversations",
            records=conversations,
            columns=[
                "id", "account_id", "inbox_id", "contact_id", "status", "assignee_id",
                "created_at", "updated_at", "last_activity_at",
            ],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "messages",
            records=messages,
            columns=[
                "id", "account_id", "conversation_id", "inbox_id", "direction", "private",
                "sender_type", "sender_id", "status", "created_at", "updated_at",
            ],
        )  # fmt: skip
        n += len(messages)
        print(f"\r{n:,} messages loaded", end="", file=sys.stderr)
    load_s = time.perf_counter() - began
    print(file=sys.stderr)
    began = time.perf_counter()
    for index in indexes:
        if index["indexname"] != "conversations_one_open":  # a threading rule the generator's
            await conn.execute(index["indexdef"])  # data does not keep; no report reads it
    await conn.execute("CREATE INDEX messages_report ON messages (account_id, created_at)")
    await conn.execute(
        "CREATE INDEX conversations_report ON conversations (account_id, created_at)"
    )
    await conn.execute("VACUUM ANALYZE messages")
    await conn.execute("VACUUM ANALYZE conversations")
    return {
        "load_s": round(load_s, 1),
        "index_and_analyze_s": round(time.perf_counter() - began, 1),
    }


async def run(events: int, data: Path, repeats: int) -> dict[str, Any]:
    shutil.rmtree(data, ignore_errors=True)
    dsn = await start_embedded_postgres(data)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            timings = await load(conn, events)
            size = await conn.fetchval(
                "SELECT pg_total_relation_size('messages')"
                " + pg_total_relation_size('conversations')"
            )
            count = await conn.fetchval("SELECT count(*) FROM messages")
            timed = {
                "volume (year)": (VOLUME, (*YEAR, TZ)),
                "first_response by agent (year)": (FIRST_RESPONSE.format(key="agent"), YEAR),
                "resolution by inbox (year)": (RESOLUTION, YEAR),
                "agents (year)": (AGENTS, YEAR),
                "volume (one month)": (VOLUME, (*MONTH, TZ)),
                "first_response by inbox (one month)": (
                    FIRST_RESPONSE.format(key="inbox_id"),
                    MONTH,
                ),
            }
            await conn.execute("SET max_parallel_workers_per_gather = 2")
            latency: dict[str, dict[str, float]] = {}
            for name, (sql, args) in timed.items():
                samples = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    await conn.fetch(sql, "acc", *args)
                    samples.append(time.perf_counter() - t)
                latency[name] = {"p50_s": statistics.median(samples), "p95_s": _p95(samples)}
                print(f"{name}: p95 {latency[name]['p95_s']:.2f} s", file=sys.stderr)
        finally:
            await conn.close()
    finally:
        stop_embedded_postgres(data)
        shutil.rmtree(data, ignore_errors=True)
    return {
        "message_events": count,
        **timings,
        "table_bytes": size,
        "repeats": repeats,
        "report_latency": latency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="message events")
    parser.add_argument("--data", type=Path, default=Path(".artefacts/analytics/pg"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(".artefacts/analytics/postgres.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args.events, args.data, args.repeats))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
