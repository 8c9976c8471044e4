"""``hub analytics backfill`` and ``hub analytics verify``: the work behind the thin commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from analytics.backend import open_backend
from analytics.backfill import backfill, verify
from analytics.store import AnalyticsStore
from hub.config import Config
from hub.store.db import Conn


def _bar(done: int, total: int) -> None:
    width = 30
    share = done / total if total else 1.0
    filled = int(share * width)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} events")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def run_analytics(
    config: Config, command: str, args: argparse.Namespace
) -> Callable[[Conn], Awaitable[tuple[dict[str, Any], bool]]]:
    async def work(conn: Conn) -> tuple[dict[str, Any], bool]:
        store = AnalyticsStore(
            open_backend(config.data_dir, config.clickhouse_database, config.clickhouse_url)
        )
        try:
            if command == "backfill":
                read = await backfill(conn, store, restart=args.restart, progress=_bar)
                return {"events_read": read}, True
            await store.ready()
            compared = await verify(conn, store.backend)
            same = all(c["postgres"] == c["analytics"] for c in compared.values())
            return {"tables": compared, "match": same}, same
        finally:
            await store.close()

    return work
