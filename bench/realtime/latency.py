"""Webhook-to-socket latency on the embedded default: signed API-channel webhooks at a fixed rate
(open loop, default 1,000 msgs/s), and agent sockets (python-socketio) measuring, for every
message.received event, the time from the load generator's send to the socket's receipt.

    .venv/bin/python -m bench.realtime.latency [--rate 1000] [--seconds 15] [--sockets 1]

Both ends read the same clock (one machine). Writes bench/results/realtime-latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import socketio

from bench.hub_process import running_hub
from bench.ingest.run import build_loadgen
from bench.smoke import add_smoke_flag, results_dir

RESULTS = Path(__file__).resolve().parents[1] / "results"
SENT = re.compile(r"sent_ns=(\d+)")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1)))] if ordered else 0.0


async def measure(
    args: argparse.Namespace,
    url: str,
    inbox: dict[str, Any],
    token: str,
    loadgen: Path,
    webhook_bases: list[str] | None = None,
    run: str = "run",
) -> dict[str, Any]:
    """Agent sockets on ``url``; webhooks split evenly over ``webhook_bases`` (default: ``url``),
    one load generator each at its share of ``args.rate``."""
    bases = webhook_bases or [url]
    latencies: list[list[float]] = [[] for _ in range(args.sockets)]
    after_event: list[float] = []  # from the event's occurred_at (inside the ingest) to receipt
    clients = []
    for index in range(args.sockets):
        client = socketio.AsyncClient(reconnection=False)

        def on_events(batch: list[dict[str, Any]], index: int = index) -> None:
            now = time.time_ns()
            for data in batch:
                if data["type"] != "message.received":
                    continue
                found = SENT.search(data["event"]["payload"]["content"] or "")
                if found:
                    latencies[index].append((now - int(found.group(1))) / 1e6)
                    occurred = datetime.fromisoformat(data["event"]["occurred_at"])
                    after_event.append(now / 1e6 - occurred.timestamp() * 1e3)

        client.on("events", on_events, namespace="/agent")
        await client.connect(
            url,
            namespaces=["/agent"],
            auth={"token": token},
            transports=["websocket"],
            wait_timeout=10,
        )
        clients.append(client)
    print(
        f"== {args.sockets} agent socket(s) connected; sending {args.rate} msgs/s for "
        f"{args.seconds} s",
        flush=True,
    )
    procs = [
        await asyncio.create_subprocess_exec(
            str(loadgen),
            "-url",
            f"{base}webhooks/api/{inbox['id']}",
            "-secret",
            inbox["signing_secret"],
            "-c",
            str(getattr(args, "concurrency", 64) // len(bases)),
            "-d",
            f"{args.seconds}s",
            "-rate",
            str(args.rate // len(bases)),
            "-label",
            f"webhooks-{n}",
            "-prefix",
            f"{run}-g{n}",
            stdout=asyncio.subprocess.PIPE,
        )
        for n, base in enumerate(bases)
    ]
    results = [json.loads((await proc.communicate())[0]) for proc in procs]
    sent = {
        "ok": sum(r["ok"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
    }
    # the last events: up to 2 s more, or until every socket has one per acknowledged webhook
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(len(x) < sent["ok"] for x in latencies):
        await asyncio.sleep(0.05)
    for client in clients:
        await client.disconnect()
    everyone = [x for per_socket in latencies for x in per_socket]
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "sockets": args.sockets,
        "webhooks_ok": sent["ok"],
        "webhooks_failed": sent["failed"],
        "events_measured": len(everyone),
        "per_socket_received": [len(x) for x in latencies],
        "p50_ms": round(percentile(everyone, 0.50), 1),
        "p90_ms": round(percentile(everyone, 0.90), 1),
        "p99_ms": round(percentile(everyone, 0.99), 1),
        "max_ms": round(max(everyone, default=0.0), 1),
        "webhook_p99_ms": sent["p99_ms"],
        "from_event_p50_ms": round(percentile(after_event, 0.50), 1),
        "from_event_p99_ms": round(percentile(after_event, 0.99), 1),
    }


def load_arguments(description: str) -> argparse.Namespace:
    """The load every latency benchmark takes: webhook rate, duration, agent sockets."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--sockets", type=int, default=1)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="the load generator's connections: a send slot finding them all busy is lost "
        "(counted as failed), so the accepted rate is at most this over the webhook latency",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="HUB_WORKER_PROCESSES for the hub (1: gateway and a worker child)",
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.rate, args.seconds = min(args.rate, 100), 1
    return args


def main() -> None:
    args = load_arguments(__doc__)
    loadgen = build_loadgen()
    split = {"HUB_WORKER_PROCESSES": str(args.worker_processes)}
    with running_hub("hub-rt-bench-", extra_env=split) as hub:
        result = asyncio.run(measure(args, hub.url, hub.inbox, hub.token, loadgen))
    results = results_dir(args.smoke, RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    result["worker_processes"] = args.worker_processes
    (results / "realtime-latency.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
