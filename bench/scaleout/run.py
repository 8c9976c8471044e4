"""Scale-out on Kafka + Redis + PostgreSQL: one worker and one gateway, then one worker and two
gateways, in the same run, at the same webhook rate (open loop, default 1,000 msgs/s).

    .venv/bin/python -m bench.scaleout.run [--rate 1000] [--seconds 15] [--warmup 5]

Each layout first takes ``--warmup`` seconds of the same load through the same path, not
measured (a fresh broker's JIT, new topics and connections otherwise land in the first layout's
tail only). For each layout: webhook-to-socket p50/p99 (the agent socket on the first gateway,
webhooks split evenly over the gateways), webhooks acknowledged, and the hub processes'
CPU-seconds per 1,000 messages (utime + stime of every gateway and worker over the run, from
/proc). This box has two
cores shared with PostgreSQL, Kafka, Redis and the load generators, so raw throughput cannot show
scaling; the cost per message can. Writes bench/results/scaleout.json and scaleout.svg.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bench.hub_process import cpu_seconds, free_port, wait_ready
from bench.ingest.run import build_loadgen
from bench.realtime.latency import measure
from bench.smoke import add_smoke_flag, results_dir
from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres
from tests.support.kafka_server import KafkaServer
from tests.support.redis_server import RedisServer

RESULTS = Path(__file__).resolve().parents[1] / "results"


def spawn(env: dict[str, str], role: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``hub serve`` in ``role``, not waited for (layouts start their processes together)."""
    hub = str(Path(sys.executable).parent / "hub")
    with log.open("ab") as out:
        return subprocess.Popen(
            [hub, "serve", "--role", role, "--port", str(port)], env=env, stdout=out, stderr=out
        )


def commit_counts(ports: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Per process and committer: (transactions, items) so far, from its /metrics."""
    out: dict[str, tuple[float, float]] = {}
    for name, port in ports.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        for committer in ("ingest", "realtime-log"):
            count = total = 0.0
            for line in text.splitlines():
                if f'committer="{committer}"' not in line:
                    continue
                if line.startswith("hub_group_commit_size_count"):
                    count = float(line.rsplit(" ", 1)[1])
                elif line.startswith("hub_group_commit_size_sum"):
                    total = float(line.rsplit(" ", 1)[1])
            if count:
                out[f"{name}:{committer}"] = (count, total)
    return out


def layout(
    args: argparse.Namespace,
    work: Path,
    env: dict[str, str],
    inbox: dict[str, Any],
    token: str,
    loadgen: Path,
    gateways: int,
) -> dict[str, Any]:
    prefix = f"s{gateways}-{os.urandom(3).hex()}."
    env = {**env, "HUB_KAFKA_PREFIX": prefix}
    worker_port = free_port()
    procs = {"worker": spawn(env, "worker", worker_port, work / f"worker-{gateways}.log")}
    ports = [free_port() for _ in range(gateways)]
    for n, port in enumerate(ports):
        procs[f"gateway-{n + 1}"] = spawn(env, "gateway", port, work / f"gw{n + 1}-{gateways}.log")
    named_ports = {"worker": worker_port} | {f"gateway-{n + 1}": p for n, p in enumerate(ports)}
    for name, proc in procs.items():
        wait_ready(f"http://127.0.0.1:{named_ports[name]}/readyz", proc)
    bases = [f"http://127.0.0.1:{port}/" for port in ports]
    print(f"== {gateways} gateway(s) + 1 worker up; {args.rate} msgs/s for {args.seconds} s")
    try:
        # warm up the same path (the broker's JIT, connections, topics, caches), not measured
        if args.warmup > 0:
            print(f"== warming up for {args.warmup} s", flush=True)
            asyncio.run(
                measure(
                    argparse.Namespace(**{**vars(args), "seconds": args.warmup}),
                    bases[0],
                    inbox,
                    token,
                    loadgen,
                    webhook_bases=bases,
                    run=prefix + "warmup-",
                )
            )
        commits_before = commit_counts(named_ports)
        before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        result = asyncio.run(
            measure(args, bases[0], inbox, token, loadgen, webhook_bases=bases, run=prefix)
        )
        cpu = {name: round(cpu_seconds(p.pid) - before[name], 2) for name, p in procs.items()}
        commits_after = commit_counts(named_ports)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=60)
    total = sum(cpu.values())
    commits = {}
    for key, (count, items) in commits_after.items():
        count0, items0 = commits_before.get(key, (0.0, 0.0))
        if count > count0:
            commits[key] = {
                "transactions": int(count - count0),
                "items_per_transaction": round((items - items0) / (count - count0), 1),
            }
    result.update(
        gateways=gateways,
        group_commits=commits,
        cpu_seconds=cpu,
        cpu_seconds_per_1000=round(1000 * total / max(1, result["webhooks_ok"]), 3),
    )
    print(json.dumps(result, indent=2), flush=True)
    return result


def chart(rows: list[dict[str, Any]]) -> str:
    """Bars: CPU-seconds per 1,000 messages and p99 for each layout."""
    width, bar = 520, 60
    peak_cpu = max(r["cpu_seconds_per_1000"] for r in rows) or 1
    peak_p99 = max(r["p99_ms"] for r in rows) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="260" '
        'font-family="sans-serif" font-size="12">',
        '<text x="10" y="18" font-size="14">Scale-out on Kafka + Redis</text>',
    ]
    for i, r in enumerate(rows):
        x = 40 + i * 230
        h_cpu = 160 * r["cpu_seconds_per_1000"] / peak_cpu
        h_p99 = 160 * r["p99_ms"] / peak_p99
        parts += [
            f'<rect x="{x}" y="{220 - h_cpu}" width="{bar}" height="{h_cpu}" fill="#4a7bd0"/>',
            f'<text x="{x}" y="{214 - h_cpu}">{r["cpu_seconds_per_1000"]} s</text>',
            f'<rect x="{x + bar + 10}" y="{220 - h_p99}" width="{bar}" height="{h_p99}" '
            'fill="#d07b4a"/>',
            f'<text x="{x + bar + 10}" y="{214 - h_p99}">{r["p99_ms"]} ms</text>',
            f'<text x="{x}" y="240">{r["gateways"]} gateway(s) + 1 worker</text>',
        ]
    parts += [
        '<text x="10" y="256" fill="#4a7bd0">CPU-s per 1,000 msgs</text>',
        '<text x="170" y="256" fill="#d07b4a">webhook-to-socket p99</text>',
        "</svg>",
    ]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--sockets", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5, help="seconds of load before each layout")
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.rate, args.seconds, args.warmup = min(args.rate, 100), 1, 0
    results = results_dir(args.smoke, RESULTS)
    loadgen = build_loadgen()
    work = Path(tempfile.mkdtemp(prefix="hub-scaleout-"))
    print("== starting PostgreSQL, Redis and Kafka", flush=True)
    dsn = asyncio.run(start_embedded_postgres(work / "pg"))
    redis = RedisServer(work / "redis")
    kafka = KafkaServer(work / "kafka")
    redis.start()
    kafka.start()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": redis.url,
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "HUB_SECRET_KEY": Fernet.generate_key().decode(),
        "HUB_ACCESS_LOG": "0",
        "HUB_LOG_LEVEL": "warning",
        "HUB_MAX_CONNECTIONS_PER_ADDRESS": "0",  # the load generators are one address
    }
    hub = str(Path(sys.executable).parent / "hub")
    done = False
    try:
        made = subprocess.run(
            [hub, "inbox", "create", "--channel", "api", "--name", "scaleout"],
            env=env,
            check=True,
            capture_output=True,
        )
        inbox = json.loads(made.stdout)
        admin = subprocess.run(
            [hub, "token", "create", "--name", "scaleout", "--role", "administrator"],
            env=env,
            check=True,
            capture_output=True,
        )
        token = json.loads(admin.stdout)["token"]
        started = time.monotonic()
        rows = [layout(args, work, env, inbox, token, loadgen, n) for n in (1, 2)]
        done = True
    finally:
        kafka.stop()
        redis.stop()
        stop_embedded_postgres(work / "pg")
        if done:  # the servers' data: ~50 MB a run, left behind by every run until 2026-12-04
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"== the servers' data and the hubs' logs are kept in {work}", file=sys.stderr)
    ratio = rows[1]["cpu_seconds_per_1000"] / rows[0]["cpu_seconds_per_1000"]
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m bench.scaleout.run " + " ".join(sys.argv[1:]),
        "rate": args.rate,
        "seconds": args.seconds,
        "layouts": rows,
        "cost_ratio_two_over_one": round(ratio, 3),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / "scaleout.json").write_text(json.dumps(summary, indent=2))
    (results / "scaleout.svg").write_text(chart(rows))
    print(f"\n{'layout':<22}{'acked':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU-s/1k':>10}")
    for r in rows:
        print(
            f"{str(r['gateways']) + ' gw + 1 worker':<22}{r['webhooks_ok']:>8}"
            f"{r['p50_ms']:>9}{r['p99_ms']:>9}{r['cpu_seconds_per_1000']:>10}"
        )
    print(f"cost per message, two gateways / one: {ratio:.3f}")


if __name__ == "__main__":
    main()
