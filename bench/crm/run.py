"""CSV import of contacts: `hub contacts import FILE` (the real command, embedded PostgreSQL in a
fresh data directory) on a generated file of N rows: rows/s end to end, with the progress bar.

    .venv/bin/python -m bench.crm.run [--rows 1000000] [--batch 1000]

The file: a name, a phone number, an email, a defined list attribute (plan) and a free one
(city) a row; 1% of the rows repeat an earlier person (they update that contact: the dedupe
path) and 0.1% carry a bad phone number (a row error). Writes bench/results/crm-import.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.smoke import add_smoke_flag, results_dir
from hub.actions.setup import ensure_default_account
from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres

RESULTS = Path(__file__).resolve().parents[1] / "results"
CITIES = ("Colombo", "Kandy", "Galle", "Jaffna", "Matara")


def write_csv(path: Path, rows: int) -> dict[str, int]:
    repeats = errors = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("name,phone,email,plan,city\n")
        for n in range(rows):
            person = n
            if n % 100 == 99:
                person, repeats = n // 2, repeats + 1  # someone already in the file
            phone = f"+9477{person:07d}"
            if n % 1000 == 500:
                phone, errors = "not-a-number", errors + 1
            plan = "pro" if person % 3 == 0 else "free"
            fh.write(
                f"Customer {person},{phone},c{person}@example.com,{plan},"
                f"{CITIES[person % len(CITIES)]}\n"
            )
    return {"repeats": repeats, "bad_rows": errors}


def hub(data_dir: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUB_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env,
        check=True,
        text=True,
        stdout=subprocess.PIPE,
        stderr=None if not capture else subprocess.PIPE,
    )


async def define_plan(data_dir: Path) -> None:
    dsn = await start_embedded_postgres(data_dir)
    conn = await asyncpg.connect(dsn)
    try:
        account = await ensure_default_account(conn)
        await conn.execute(
            """INSERT INTO contact_attribute_definitions (account_id, key, label, type, options)
               VALUES ($1, 'plan', 'Plan', 'list', '{free,pro}')""",
            account,
        )
    finally:
        await conn.close()


async def count_contacts(data_dir: Path) -> int:
    dsn = await start_embedded_postgres(data_dir)
    conn = await asyncpg.connect(dsn)
    try:
        found: int = await conn.fetchval("SELECT count(*) FROM contacts")
        return found
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    add_smoke_flag(parser)
    args = parser.parse_args()
    rows = 5_000 if args.smoke else args.rows
    with tempfile.TemporaryDirectory(prefix="bench-crm-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        csv_path = root / "contacts.csv"
        started = time.monotonic()
        shape = write_csv(csv_path, rows)
        print(
            f"file: {rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB "
            f"({time.monotonic() - started:.1f} s to write)",
            flush=True,
        )
        hub(data_dir, "migrate")
        asyncio.run(define_plan(data_dir))
        started = time.monotonic()
        done = hub(
            data_dir,
            "contacts", "import", str(csv_path), "--batch", str(args.batch),
            "--errors", str(root / "errors.csv"),
            capture=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        summary: dict[str, Any] = json.loads(done.stdout)
        contacts = asyncio.run(count_contacts(data_dir))
        stop_embedded_postgres(data_dir)
    result = {
        "rows": rows,
        "batch": args.batch,
        "seconds": round(seconds, 1),  # the whole command: start-up, migrations, import
        "rows_per_second": round(rows / seconds),
        "import_seconds": summary["seconds"],
        "import_rows_per_second": round(rows / summary["seconds"]),
        "created": summary["created"],
        "updated": summary["updated"],
        "failed": summary["failed"],
        "contacts": contacts,
        **shape,
    }
    print(json.dumps(result, indent=2))
    out = results_dir(args.smoke, RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crm-import.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
