"""``hub contacts import FILE``: the work behind the thin command (``server/cli.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from crm.importer import ImportRefused, run_import, write_report
from hub.store.db import Conn, create_pool


class Bar:
    """A progress bar on stderr: the share of the file read and the time since the start."""

    def __init__(self) -> None:
        self._clock = time.monotonic
        self._started = time.monotonic()
        self._finished = False

    def __call__(self, done: int, total: int) -> None:
        if self._finished:
            return
        self._finished = done >= total
        width = 30
        share = done / total if total else 1.0
        filled = int(share * width)
        elapsed = self._clock() - self._started
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {share:6.1%}  {elapsed:7.1f} s"
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def import_contacts(dsn: str, account_id: str, args: argparse.Namespace) -> Any:
    async def work(conn: Conn) -> tuple[dict[str, Any], int]:
        del conn  # migrations ran on it; the import takes a pool of its own
        pool = await create_pool(dsn, 2)
        started = time.monotonic()
        try:
            outcome = await run_import(
                pool,
                Path(args.file),
                account_id=account_id,
                dry_run=args.dry_run,
                progress=None if args.no_progress else Bar(),
                batch_size=args.batch,
            )
        except ImportRefused as exc:
            return {"error": {"code": exc.code, "message": exc.message}}, 2
        finally:
            await pool.close()
        report = Path(args.errors) if args.errors else Path(f"{args.file}.errors.csv")
        if outcome.errors:
            write_report(report, outcome.errors)
        summary = {k: v for k, v in dataclasses.asdict(outcome).items() if k != "errors"}
        summary["error_report"] = str(report) if outcome.errors else None
        summary["seconds"] = round(time.monotonic() - started, 1)
        return summary, 0

    return work
