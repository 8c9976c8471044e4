"""The ingest pipeline without HTTP: many concurrent callers submit messages straight to the group
committer of a started hub (embedded PostgreSQL, relay and journal running), to show what the core
costs apart from the web server.

    .venv/bin/python bench/ingest/pipeline.py [--seconds 6] [--callers 64,256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import uvloop

from bench.smoke import add_smoke_flag, results_dir
from channels._base import InboundMessage, Sender
from hub.actions.ingest import IngestRequest
from hub.actions.setup import create_inbox
from hub.config import Config
from hub.store.embedded import stop_embedded_postgres
from hub.store.reads import load_inbox
from server.compose import build_hub

RESULTS = Path(__file__).resolve().parents[1] / "results"


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(callers: int, seconds: float, data_dir: Path) -> dict[str, float]:
    hub = build_hub(Config(data_dir=data_dir, access_log=False, log_level="warning"))
    await hub.start()
    try:
        async with hub.pool.acquire() as conn:
            made = await create_inbox(
                conn, hub.box, account_id=hub.account_id, channel="api", name=f"pipeline-{callers}"
            )
        inbox = await load_inbox(hub.pool, hub.box, made.id)
        assert inbox is not None
        sent = 0
        stop = time.monotonic() + seconds

        async def caller() -> None:
            nonlocal sent
            while time.monotonic() < stop:
                sent += 1
                n = sent
                message = InboundMessage(
                    f"p{callers}-{n}", Sender("api", f"+9477{n % 1000:07d}"), f"order {n}"
                )
                await hub.ingest.submit(IngestRequest(inbox, message))

        cpu0, started = cpu(), time.monotonic()
        await asyncio.gather(*(caller() for _ in range(callers)))
        elapsed, used = time.monotonic() - started, cpu() - cpu0
        return {
            "callers": callers,
            "msgs_per_s": round(sent / elapsed),
            "hub_cpu_us_per_msg": round(used / sent * 1e6),
            "commits": hub.ingest.commits,
            "avg_batch": round(sent / hub.ingest.commits, 1),
        }
    finally:
        await hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--callers", default="64,256")
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.seconds = 0.5
    work = Path(tempfile.mkdtemp(prefix="hub-pipeline-"))
    rows = []
    try:
        for callers in (int(c) for c in args.callers.split(",")):
            print(f"== {callers} concurrent callers for {args.seconds:g} s", flush=True)
            row = uvloop.run(run(callers, args.seconds, work / "data"))
            print(f"   {row}", flush=True)
            rows.append(row)
    finally:
        stop_embedded_postgres(work / "data")
        shutil.rmtree(work, ignore_errors=True)
    results = results_dir(args.smoke, RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    (results / "pipeline.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
