"""Many concurrent web chat visitors on one ``hub serve`` process (the embedded default): python-
socketio visitors on ``/widget``, split over a few load-generator processes, send messages at a
fixed total rate (open loop); one agent socket on ``/agent`` times each ``message.received`` from
the visitor's send (the send time is in the message). Reports the hub's RSS before and with the
visitors connected, and the visitor-to-agent latency (p50, p99, max) of the measured phase.

    .venv/bin/python -m bench.widget.run [--visitors 2000] [--rate 200] [--seconds 30] [--procs 2]

Every visitor first sends one message (its contact and conversation are created: the warm-up,
not measured), then the measured phase runs at ``--rate``. Writes bench/results/widget.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import socketio

from bench.hub_process import cpu_seconds, running_hub
from bench.smoke import add_smoke_flag, results_dir

RESULTS = Path(__file__).resolve().parents[1] / "results"
ORIGIN = "http://shop.bench.example"
SENT = re.compile(r"sent_ns=(\d+)")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1)))] if ordered else 0.0


def make_inbox(url: str, token: str) -> str:
    body = {
        "name": "Website",
        "channel": "webchat",
        "settings": {
            "allowed_origins": ORIGIN,
            "visitor_messages_per_minute": 600,
            "ip_messages_per_minute": 100_000,
        },
    }
    request = urllib.request.Request(
        url + "api/v1/inboxes",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        made: dict[str, Any] = json.loads(response.read())
    return str(made["id"])


async def _visitors(
    url: str,
    inbox: str,
    count: int,
    rate: float,
    seconds: float,
    ready: Any,
    go: Any,
    measure: Any,
    out: Any,
) -> None:
    clients: list[socketio.AsyncClient] = []
    errors: dict[str, int] = {}
    acked = 0
    late: list[float] = []  # how far behind its schedule each send went out (ms)

    def answered(reply: Any = None) -> None:
        nonlocal acked
        if isinstance(reply, dict) and reply.get("ok"):
            acked += 1
        else:
            code = (reply or {}).get("error", {}).get("code", "none")
            errors[code] = errors.get(code, 0) + 1

    async def connect_one() -> None:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            url,
            namespaces=["/widget"],
            auth={"inbox_id": inbox},
            headers={"Origin": ORIGIN},
            transports=["websocket"],
            wait_timeout=60,
        )
        clients.append(client)

    for start in range(0, count, 50):  # 50 handshakes at a time
        await asyncio.gather(*(connect_one() for _ in range(min(50, count - start))))
    ready.put(len(clients))
    await asyncio.to_thread(go.wait)

    async def send_at(rate_now: float, total: int, tag: str) -> None:
        begin = time.monotonic()
        for n in range(total):
            delay = begin + n / rate_now - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif tag == "load":
                late.append(-delay * 1000)
            client = clients[n % len(clients)]
            content = f"{tag} {n} sent_ns={time.time_ns()}"
            await client.emit(
                "message",
                {"content": content, "client_id": f"{tag}-{n}"},
                namespace="/widget",
                callback=answered,
            )

    await send_at(rate, len(clients), "warm")  # each visitor's first message
    await asyncio.to_thread(measure.wait)  # the hub has delivered every warm-up message
    await send_at(rate, int(rate * seconds), "load")
    await asyncio.sleep(3)
    out.put(
        {
            "acked": acked,
            "errors": errors,
            "late_ms": sorted(late)[-max(1, len(late) // 100)] if late else 0.0,
        }
    )
    for client in clients:
        await client.disconnect()


def visitors_process(*args: Any) -> None:
    asyncio.run(_visitors(*args))


async def measure(args: argparse.Namespace, url: str, pid: int, token: str) -> dict[str, Any]:
    inbox = make_inbox(url, token)
    latencies: list[float] = []
    warm: list[float] = []
    agent = socketio.AsyncClient(reconnection=False)

    def on_events(batch: list[dict[str, Any]]) -> None:
        now = time.time_ns()
        for item in batch:
            if item["type"] != "message.received":
                continue
            content = item["event"]["payload"]["content"] or ""
            found = SENT.search(content)
            if found:
                (warm if content.startswith("warm") else latencies).append(
                    (now - int(found[1])) / 1e6
                )

    agent.on("events", on_events, namespace="/agent")
    await agent.connect(url, namespaces=["/agent"], auth={"token": token}, transports=["websocket"])
    rss_idle = rss_mib(pid)
    ctx = mp.get_context("spawn")
    ready, out, go, measure_now = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    share = args.visitors // args.procs
    procs = [
        ctx.Process(
            target=visitors_process,
            args=(
                url,
                inbox,
                share,
                args.rate / args.procs,
                args.seconds,
                ready,
                go,
                measure_now,
                out,
            ),
        )
        for _ in range(args.procs)
    ]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    connected = sum([await asyncio.to_thread(ready.get, True, 600) for _ in procs])
    connect_s = time.monotonic() - started
    rss_connected = rss_mib(pid)
    go.set()
    warm_started = time.monotonic()
    while len(warm) < connected and time.monotonic() - warm_started < 600:
        await asyncio.sleep(0.2)
    warm_s = time.monotonic() - warm_started
    await asyncio.sleep(2)
    measure_now.set()
    measured_started = time.monotonic()
    cpu_start = cpu_seconds(pid)
    results = [await asyncio.to_thread(out.get, True, 600 + args.seconds * 4) for _ in procs]
    sent = int(args.rate / args.procs * args.seconds) * args.procs
    deadline = time.monotonic() + 60  # let the hub drain what it still holds
    while len(latencies) < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    cpu_used = cpu_seconds(pid) - cpu_start
    wall = time.monotonic() - measured_started
    rss_end = rss_mib(pid)
    for proc in procs:
        proc.join(timeout=60)
    await agent.disconnect()
    errors: dict[str, int] = {}
    for r in results:
        for code, n in r["errors"].items():
            errors[code] = errors.get(code, 0) + n
    return {
        "when": datetime.now().isoformat(timespec="seconds"),
        "visitors": connected,
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "connect_s": round(connect_s, 1),
        "rss_mib": {
            "idle": round(rss_idle, 1),
            "visitors_connected": round(rss_connected, 1),
            "end": round(rss_end, 1),
            "per_visitor_kib": round((rss_connected - rss_idle) * 1024 / max(connected, 1), 1),
        },
        "measured": {
            "sent": sent,
            "received_by_agent": len(latencies),
            "latency_ms": {
                "p50": round(percentile(latencies, 0.5), 1),
                "p99": round(percentile(latencies, 0.99), 1),
                "max": round(max(latencies, default=0.0), 1),
            },
        },
        "warm_up_first_messages": {
            "received_by_agent": len(warm),
            "all_delivered_after_s": round(warm_s, 1),
            "latency_ms_p99": round(percentile(warm, 0.99), 1),
        },
        "hub_cpu_ms_per_message": round(cpu_used / max(len(latencies), 1) * 1000, 2),
        "hub_cpu_share_of_a_core": round(cpu_used / wall, 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "generator_late_ms_p99": max(r["late_ms"] for r in results),
        "acked": sum(r["acked"] for r in results),
        "refused": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="visitor messages per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.visitors, args.rate, args.seconds, args.procs = 20, 20.0, 1.0, 1
    with running_hub("hub-widget-") as hub:
        result = asyncio.run(measure(args, hub.url, hub.pid, hub.token))
    print(json.dumps(result, indent=2))
    folder = results_dir(args.smoke, RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "widget.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
