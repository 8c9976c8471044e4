"""Webhook-to-socket latency on the embedded default: signed API-channel webhooks at a fixed rate
(open loop, default 1,000 msgs/s), and agent sockets (python-socketio) measuring, for every
message.received event, the time from the load generator's send to the socket's receipt.

    .venv/bin/python -m bench.realtime.latency [--rate 1000] [--seconds 15] [--sockets 1]

Both ends read the same clock (one machine). Writes bench/results/realtime-latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import socketio

from bench.hub_process import cpu_seconds, running_hub, transactions, until_settled
from bench.ingest.run import build_loadgen
from bench.smoke import add_smoke_flag, results_dir
from hub.store.embedded import start_embedded_postgres

RESULTS = Path(__file__).resolve().parents[1] / "results"
SENT = re.compile(r"sent_ns=(\d+)")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1)))] if ordered else 0.0


#: a task run alongside the load that switches the hub between named states and returns when the
#: load ended, with when each state began (``time.time_ns()``, state) in order
Phases = Callable[[asyncio.Event], Awaitable[list[tuple[int, str]]]]


def by_phase(
    samples: list[tuple[int, float]], timeline: list[tuple[int, str]], guard_s: float
) -> dict[str, dict[str, float]]:
    """Latencies grouped by the state the hub was in when the webhook was sent; a message sent
    within ``guard_s`` after a switch is left out (the previous state's work may still run)."""
    starts = [t for t, _ in timeline]
    grouped: dict[str, list[float]] = {}
    for sent, ms in samples:
        i = bisect.bisect_right(starts, sent) - 1
        if i < 0 or sent - starts[i] < guard_s * 1e9:
            continue
        grouped.setdefault(timeline[i][1], []).append(ms)
    return {
        name: {
            "events": len(values),
            "p50_ms": round(percentile(values, 0.50), 1),
            "p99_ms": round(percentile(values, 0.99), 1),
        }
        for name, values in sorted(grouped.items())
    }


async def measure(
    args: argparse.Namespace,
    url: str,
    inbox: dict[str, Any],
    token: str,
    loadgen: Path,
    webhook_bases: list[str] | None = None,
    run: str = "run",
    phases: Phases | None = None,
    guard_s: float = 0.5,
    connected: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Agent sockets on ``url``; webhooks split evenly over ``webhook_bases`` (default: ``url``),
    one load generator each at its share of ``args.rate``. With ``phases``, the result also has
    the latencies per state of the hub (``by_phase``). ``connected`` is awaited once the sockets
    are in, before the load starts."""
    bases = webhook_bases or [url]
    latencies: list[list[float]] = [[] for _ in range(args.sockets)]
    samples: list[tuple[int, float]] = []  # (sent ns, ms) of every receipt
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
                    sent_ns = int(found.group(1))
                    latencies[index].append((now - sent_ns) / 1e6)
                    samples.append((sent_ns, (now - sent_ns) / 1e6))
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
    if connected is not None:
        await connected()
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
    ended = asyncio.Event()
    switching = asyncio.ensure_future(phases(ended)) if phases is not None else None
    results = [json.loads((await proc.communicate())[0]) for proc in procs]
    ended.set()
    timeline = await switching if switching is not None else []
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
    extra = {"by_phase": by_phase(samples, timeline, guard_s)} if phases is not None else {}
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
        **extra,
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


BATCHES = re.compile(r'^hub_bus_batches_total\{group="([^"]+)"\} ([0-9.e+]+)$', re.M)


def bus_batches(base: str) -> dict[str, float]:
    """Batches handed to each consumer group so far (the hub's ``/metrics``)."""
    with urllib.request.urlopen(f"{base}metrics", timeout=10) as response:
        text = response.read().decode()
    return {group: float(n) for group, n in BATCHES.findall(text)}


async def costed(args: argparse.Namespace, hub: Any, dsn: str, loadgen: Path) -> dict[str, Any]:
    """:func:`measure`, with what the webhooks cost until the hub caught up with them: its CPU
    (with a worker child) and PostgreSQL's transactions, per accepted webhook."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    cpu, xacts, batches = 0.0, 0, {}

    async def baseline() -> None:  # once the sockets are in: their sign-in is not the webhooks'
        nonlocal cpu, xacts, batches
        cpu, xacts = cpu_seconds(hub.pid), await transactions(pool)
        batches = await asyncio.to_thread(bus_batches, hub.url)

    try:
        result = await measure(args, hub.url, hub.inbox, hub.token, loadgen, connected=baseline)
        result["settled_s"] = await until_settled(hub.url, pool)
        accepted = max(result["webhooks_ok"], 1)
        after = await asyncio.to_thread(bus_batches, hub.url)
        result["bus_batches_per_1000_webhooks"] = {
            group: round((n - batches.get(group, 0)) * 1000 / accepted)
            for group, n in sorted(after.items())
        }
        result["hub_cpu_us_per_webhook"] = round((cpu_seconds(hub.pid) - cpu) * 1e6 / accepted)
        result["pg_transactions_per_webhook"] = round(
            (await transactions(pool) - xacts) / accepted, 2
        )
        return result
    finally:
        await pool.close()


def main() -> None:
    args = load_arguments(__doc__)
    loadgen = build_loadgen()
    split = {"HUB_WORKER_PROCESSES": str(args.worker_processes)}
    with running_hub("hub-rt-bench-", extra_env=split) as hub:
        dsn = asyncio.run(start_embedded_postgres(hub.data_dir))
        result = asyncio.run(costed(args, hub, dsn, loadgen))
    results = results_dir(args.smoke, RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    result["worker_processes"] = args.worker_processes
    (results / "realtime-latency.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
