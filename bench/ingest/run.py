"""Ingest benchmark: signed API-channel posts against `hub serve` (embedded default) and, in the
same run, against a no-op aiohttp handler; reports msgs/s persisted, time-to-2xx and the ratio.

    .venv/bin/python -m bench.ingest.run [--seconds 15] [--concurrency 64] [--rounds 2]
        [--profile FILE]  (py-spy --native of the hub in round 1; bench.profile_top reads it)

Needs Go (to build the load generator). Writes bench/results/ingest-c<concurrency>.json and .svg.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from bench.hub_process import RunningHub, cpu_seconds, free_port, running_hub, wait_ready
from bench.smoke import add_smoke_flag, results_dir
from hub.store.embedded import start_embedded_postgres

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "bench" / "results"


def build_loadgen() -> Path:
    binary = HERE / "loadgen" / "loadgen"
    print("== building the Go load generator", flush=True)
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=HERE / "loadgen", check=True)
    return binary


def load(
    loadgen: Path, url: str, secret: str, label: str, seconds: int, concurrency: int, prefix: str
) -> dict[str, Any]:
    out = subprocess.run(
        [
            str(loadgen),
            "-url",
            url,
            "-secret",
            secret,
            "-c",
            str(concurrency),
            "-d",
            f"{seconds}s",
            "-label",
            label,
            "-prefix",
            prefix,
        ],
        check=True,
        stdout=subprocess.PIPE,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def postgres_cpu_seconds(data_dir: Path) -> float:
    """CPU of the embedded PostgreSQL: the postmaster's children, live and reaped."""
    with open(data_dir / "postgres" / "postmaster.pid") as fh:
        postmaster = int(fh.readline())
    with open(f"/proc/{postmaster}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    child = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(child[1]) == postmaster:
                total += (int(child[11]) + int(child[12])) / tick
    return total


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """A small SVG bar chart of msgs/s per run, so the result can be looked at."""
    width, bar_h, gap, left = 640, 28, 12, 170
    top = max(r["rps"] for r in rows) or 1
    height = len(rows) * (bar_h + gap) + 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="13">',
        '<text x="10" y="20" font-weight="bold">Ingest: accepted msgs/s (higher is better)</text>',
    ]
    for i, r in enumerate(rows):
        y = 35 + i * (bar_h + gap)
        w = (width - left - 90) * r["rps"] / top
        color = "#3b82f6" if r["label"].startswith("hub") else "#9ca3af"
        parts.append(f'<text x="10" y="{y + 19}">{r["label"]}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.0f}" height="{bar_h}" fill="{color}"/>')
        parts.append(
            f'<text x="{left + w + 6:.0f}" y="{y + 19}">{r["rps"]:,.0f}/s, '
            f"p99 {r['p99_ms']:.0f} ms</text>"
        )
    parts.append("</svg>")
    path.write_text("\n".join(parts))


async def transactions(dsn: str) -> int:
    """Transactions PostgreSQL committed in the hub's database (a statement on its own counts as
    one): per message, a count that does not depend on how busy the machine is."""
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return count
    finally:
        await conn.close()


async def count_messages(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM messages")
        return count
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternating hub / no-op rounds")
    parser.add_argument("--profile", type=Path, help="py-spy the hub into this file (raw)")
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="HUB_WORKER_PROCESSES for the hub (1: gateway and a worker child)",
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    global RESULTS
    RESULTS = results_dir(args.smoke, RESULTS)
    if args.smoke:  # no profile either
        args.seconds, args.rounds, args.warmup, args.profile = 1, 1, 1, None
    else:
        args.warmup = 3
    loadgen = build_loadgen()
    RESULTS.mkdir(parents=True, exist_ok=True)
    noop_port = free_port()
    noop = subprocess.Popen(
        [sys.executable, str(HERE / "noop_server.py"), "--port", str(noop_port)]
    )
    split = {"HUB_WORKER_PROCESSES": str(args.worker_processes)}
    try:
        with running_hub("hub-bench-", extra_env=split) as running:
            rows = _rounds(args, loadgen, running, noop, noop_port)
    finally:
        noop.send_signal(signal.SIGTERM)
        noop.wait(timeout=30)
    _report(args, rows)


def _rounds(
    args: argparse.Namespace,
    loadgen: Path,
    running: RunningHub,
    noop: subprocess.Popen[bytes],
    noop_port: int,
) -> list[dict[str, Any]]:
    hub_pid, data_dir, inbox = running.pid, running.data_dir, running.inbox
    rows: list[dict[str, Any]] = []
    wait_ready(f"http://127.0.0.1:{noop_port}/", noop)
    hub_url = running.webhook_url
    noop_url = f"http://127.0.0.1:{noop_port}/webhooks/api/x"
    print(f"== warm-up ({args.warmup} s)", flush=True)
    load(loadgen, hub_url, inbox["signing_secret"], "warmup", args.warmup, args.concurrency, "warm")
    dsn = asyncio.run(start_embedded_postgres(data_dir))
    for round_no in range(1, args.rounds + 1):
        print(f"== round {round_no}: hub", flush=True)
        before = asyncio.run(count_messages(dsn))
        xact0 = asyncio.run(transactions(dsn))
        cpu0 = cpu_seconds(hub_pid)
        pg0 = postgres_cpu_seconds(data_dir)
        spy = None
        if args.profile and round_no == 1:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-p",
                    str(hub_pid),
                    "-d",
                    str(max(1, args.seconds - 2)),
                    "-f",
                    "raw",
                    "-o",
                    str(args.profile),
                    "--native",  # with --native, py-spy pauses the process per sample
                ]
            )
        r = load(
            loadgen,
            hub_url,
            inbox["signing_secret"],
            f"hub (round {round_no})",
            args.seconds,
            args.concurrency,
            f"r{round_no}",
        )
        if spy:
            spy.wait()
        r["hub_cpu_seconds"] = round(cpu_seconds(hub_pid) - cpu0, 2)
        r["postgres_cpu_seconds"] = round(postgres_cpu_seconds(data_dir) - pg0, 2)
        r["hub_cpu_us_per_msg"] = round(r["hub_cpu_seconds"] / max(r["ok"], 1) * 1e6)
        r["postgres_cpu_us_per_msg"] = round(r["postgres_cpu_seconds"] / max(r["ok"], 1) * 1e6)
        r["persisted"] = asyncio.run(count_messages(dsn)) - before
        r["persisted_per_s"] = r["persisted"] / r["seconds"]
        rows.append(r)
        hub_row = r
        print(f"== round {round_no}: no-op aiohttp", flush=True)
        rows.append(
            load(
                loadgen,
                noop_url,
                "x",
                f"no-op (round {round_no})",
                args.seconds,
                args.concurrency,
                f"n{round_no}",
            )
        )
        # read after the no-op round: the hub's consumers have caught up and their statistics
        # reached PostgreSQL's counters (flushed at most once a second)
        hub_row["pg_transactions_per_msg"] = round(
            (asyncio.run(transactions(dsn)) - xact0) / max(hub_row["persisted"], 1), 2
        )
    return rows


def _report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    hub_rows = [r for r in rows if r["label"].startswith("hub")]
    noop_rows = [r for r in rows if r["label"].startswith("no-op")]
    best_hub = max(hub_rows, key=lambda r: r["rps"])
    best_noop = max(noop_rows, key=lambda r: r["rps"])
    summary = {
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "hub_msgs_per_s": round(best_hub["rps"]),
        "hub_persisted_per_s": round(best_hub["persisted_per_s"]),
        "hub_p50_ms": best_hub["p50_ms"],
        "hub_p99_ms": best_hub["p99_ms"],
        "noop_req_per_s": round(best_noop["rps"]),
        "ratio": round(best_hub["rps"] / best_noop["rps"], 3),
        "cores": os.cpu_count(),
        "worker_processes": args.worker_processes,
        "rows": rows,
    }
    name = f"ingest-c{args.concurrency}"
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2))
    chart(rows, RESULTS / f"{name}.svg")
    print()
    print(
        f"{'run':<20}{'msgs/s':>10}{'persisted/s':>13}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}"
        f"{'hub µs/msg':>12}{'pg xact/msg':>13}"
    )
    for r in rows:
        persisted = f"{r['persisted_per_s']:.0f}" if "persisted_per_s" in r else "-"
        print(
            f"{r['label']:<20}{r['rps']:>10.0f}{persisted:>13}{r['p50_ms']:>9.1f}"
            f"{r['p99_ms']:>9.1f}{r['failed']:>8}{r.get('hub_cpu_us_per_msg', '-'):>12}"
            f"{r.get('pg_transactions_per_msg', '-'):>13}"
        )
    print(f"\nratio hub / no-op (best rounds): {summary['ratio']:.2f}")
    print(f"results: {RESULTS / name}.json, chart: {RESULTS / name}.svg")


if __name__ == "__main__":
    main()
