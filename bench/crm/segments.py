"""Segments on N contacts: how long counting a segment and reading its first page take, for the
filters the CRM offers, on embedded PostgreSQL in a fresh data directory.

    .venv/bin/python -m bench.crm.segments [--contacts 1000000]

The data (generated in SQL): every contact has a city (one of 5) and a vip flag (1 in 10), a phone
identity and, 1 in 2, an email one; 1 in 5 has a conversation (half through a WhatsApp inbox,
half through an API inbox, 1 in 10 of them labelled billing) with one inbound message, sent
within the last 90 days. Each query runs 7 times; the median is reported. Writes
bench/results/crm-segments.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.smoke import add_smoke_flag, results_dir
from crm.segments import SegmentFilter, count, members
from hub.actions.setup import ensure_default_account
from hub.store.db import create_pool
from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres
from hub.store.migrate import migrate

RESULTS = Path(__file__).resolve().parents[1] / "results"
FILTERS: dict[str, dict[str, Any]] = {
    "everyone": {},
    "city": {"attributes": {"city": "Colombo"}},
    "city_vip": {"attributes": {"city": "Colombo", "vip": True}},
    "email_identity": {"channels": ["email"]},
    "label": {"labels": ["billing"]},
    "wrote_whatsapp_30d": {"wrote_on": "whatsapp_cloud", "wrote_within_days": 30},
    "colombo_wrote_whatsapp_30d": {
        "attributes": {"city": "Colombo"},
        "wrote_on": "whatsapp_cloud",
        "wrote_within_days": 30,
    },
}


async def seed(conn: asyncpg.Connection[Any], account: str, contacts: int) -> None:
    """Contacts and conversations get ids of 26 characters that sort by creation; messages real
    ULIDs of their time, which the activity filter reads."""
    await conn.execute(
        """INSERT INTO inboxes (id, account_id, channel, name) VALUES
           ('01INBOXWHATSAPP00000000000', $1, 'whatsapp_cloud', 'WhatsApp'),
           ('01INBOXAPI000000000000000000', $1, 'api', 'API')""",
        account,
    )
    await conn.execute(
        """INSERT INTO contacts (id, account_id, name, attributes)
           SELECT '01C' || lpad(n::text, 23, '0'), $1, 'Customer ' || n,
                  jsonb_build_object('city', (ARRAY['Colombo','Kandy','Galle','Jaffna','Matara'])
                                             [1 + (n / 3) % 5], 'vip', n % 10 = 0)
             FROM generate_series(1, $2) AS n""",
        account,
        contacts,
    )
    await conn.execute(
        """INSERT INTO contact_identities (account_id, channel, address, contact_id)
           SELECT $1, 'phone', '+9477' || lpad(n::text, 8, '0'), '01C' || lpad(n::text, 23, '0')
             FROM generate_series(1, $2) AS n
           UNION ALL
           SELECT $1, 'email', 'c' || n || '@example.com', '01C' || lpad(n::text, 23, '0')
             FROM generate_series(1, $2) AS n WHERE n % 2 = 0""",
        account,
        contacts,
    )
    await conn.execute(
        """INSERT INTO conversations (id, account_id, inbox_id, contact_id, status, labels)
           SELECT '01V' || lpad(n::text, 23, '0'), $1,
                  CASE WHEN n % 10 = 0 THEN '01INBOXWHATSAPP00000000000'
                       ELSE '01INBOXAPI000000000000000000' END,
                  '01C' || lpad(n::text, 23, '0'), 'resolved',
                  CASE WHEN n % 50 = 0 THEN '{billing}'::text[] ELSE '{}' END
             FROM generate_series(5, $2, 5) AS n""",
        account,
        contacts,
    )
    # one inbound message per conversation, its id a ULID of a time in the last 90 days
    await conn.execute(
        """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction,
                                 sender_type, content, status)
           SELECT t.stamp || lpad(x.n::text, 16, '0'), $1, v.id, v.inbox_id, 'inbound',
                  'contact', 'hello', 'received'
             FROM conversations v,
                  LATERAL (SELECT substr(v.id, 4)::bigint AS n) x,
                  LATERAL (SELECT (extract(epoch FROM now() - (x.n % 90) * interval '1 day')
                                   * 1000)::bigint AS ms) m,
                  LATERAL (SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ',
                                                    ((m.ms >> (5 * (9 - i))) & 31)::int + 1, 1),
                                             '' ORDER BY i) AS stamp
                             FROM generate_series(0, 9) AS i) t""",
        account,
    )
    await conn.execute("VACUUM ANALYZE")  # what autovacuum does to a table that settled


async def timed(runs: int, fn: Any) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def run(contacts: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        data_dir = Path(tmp)
        dsn = await start_embedded_postgres(data_dir)
        try:
            conn = await asyncpg.connect(dsn)
            await migrate(conn)
            account = await ensure_default_account(conn)
            started = time.monotonic()
            await seed(conn, account, contacts)
            seeded = time.monotonic() - started
            print(f"seeded {contacts:,} contacts in {seeded:.0f} s", flush=True)
            await conn.close()
            pool = await create_pool(dsn, 2)
            out: dict[str, Any] = {"contacts": contacts, "seed_seconds": round(seeded)}
            for name, raw in FILTERS.items():
                wanted = SegmentFilter(**raw)

                async def counted(w: SegmentFilter = wanted) -> int:
                    return await count(pool, account, w, None)

                async def page(w: SegmentFilter = wanted) -> list[dict[str, Any]]:
                    return await members(pool, account, w, None, limit=51, before=None)

                count_ms, n = await timed(7, counted)
                page_ms, _ = await timed(7, page)
                out[name] = {
                    "count": n,
                    "count_ms": round(count_ms, 1),
                    "page_ms": round(page_ms, 1),
                }
                print(
                    f"{name:28} {n:>9,} contacts  count {count_ms:7.1f} ms  page {page_ms:6.1f} ms",
                    flush=True,
                )
            await pool.close()
            return out
        finally:
            stop_embedded_postgres(data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    add_smoke_flag(parser)
    args = parser.parse_args()
    result = asyncio.run(run(5_000 if args.smoke else args.contacts))
    out = results_dir(args.smoke, RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crm-segments.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
