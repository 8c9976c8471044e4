"""The AI part under load in the embedded default (`hub serve`, AI in-process): customer messages
(Banking77 texts) arrive as signed webhooks at a steady rate; for each, the time from its commit
(``message.received``) to its suggestions being committed (``message.analysed``, which the
realtime part then forwards to the agents' sockets), and the AI consumer's messages per second.

    python -m bench.ai.latency --rate 100 --seconds 30     # the benchmark (BENCHMARKS.md, AI)
    python -m bench.ai.latency --smoke                     # 20 messages, for CI
    python -m bench.ai.latency --runtime numpy             # another encoder (HUB_AI_RUNTIME)

The account has one canned response per intent (77); the messages come from 500 senders.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from ai.runtime import RUNTIMES
from bench.ai.quality import DATA, OUT, RESULTS, canned_text, load
from bench.hub_process import running_hub
from channels._base.signatures import sign_hmac_sha256
from hub.store.embedded import start_embedded_postgres


async def send(
    http: aiohttp.ClientSession, url: str, secret: str, n: str, text: str, sender: int
) -> None:
    body = json.dumps(
        {
            "message_id": f"ai-{n}",
            "contact": {"identifier": f"+9477{sender:07d}", "name": f"C{sender}"},
            "text": text,
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_hmac_sha256(secret, body),
    }
    async with http.post(url, data=body, headers=headers) as response:
        assert response.status == 200, await response.text()


async def drive(hub: Any, texts: list[str], rate: float, count: int, tag: str) -> float:
    """Send ``count`` messages at ``rate`` per second; returns the seconds it took."""
    rng = random.Random(7)
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        tasks = []
        for n in range(count):
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(
                asyncio.create_task(
                    send(
                        http,
                        hub.webhook_url,
                        hub.inbox["signing_secret"],
                        f"{tag}{n}",
                        rng.choice(texts),
                        rng.randrange(500),
                    )
                )
            )
        await asyncio.gather(*tasks)
    return time.monotonic() - started


async def wait_analysed(db: asyncpg.Connection[Any], count: int, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        done = await db.fetchval("SELECT count(*) FROM event_log WHERE type = 'message.analysed'")
        if done >= count:
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    raise SystemExit(f"only {done} of {count} messages analysed within {within} s")


async def latencies(db: asyncpg.Connection[Any]) -> list[float]:
    rows = await db.fetch(
        """SELECT extract(epoch FROM a.occurred_at - r.occurred_at) AS seconds
             FROM event_log a JOIN event_log r ON r.id = a.event->>'causation_id'
            WHERE a.type = 'message.analysed'"""
    )
    return sorted(float(r["seconds"]) for r in rows)


def load_average() -> list[str]:
    """The machine's 1, 5 and 15 minute load averages (the box is shared: say how busy)."""
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


async def add_canned(hub: Any, labels: list[str]) -> None:
    headers = {"Authorization": f"Bearer {hub.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for label in labels:
            async with http.post(
                f"{hub.url}api/v1/canned_responses",
                json={
                    "short_code": re.sub(r"[^a-z0-9_-]", "", label.lower()),
                    "content": canned_text(label),
                },
            ) as r:
                assert r.status == 201, await r.text()


async def steady(args: argparse.Namespace, texts: list[str], labels: list[str]) -> dict[str, Any]:
    count = int(args.rate * args.seconds)
    env = {"HUB_AI": "1", "HUB_AI_RUNTIME": args.runtime}
    with running_hub("hub-ai-bench-", env) as hub:
        await add_canned(hub, labels)
        print("  canned responses added", flush=True)
        dsn = await start_embedded_postgres(hub.data_dir)
        db = await asyncpg.connect(dsn)
        try:
            await drive(hub, texts, 5, 5, "warm-")  # loads the models
            print("  warm-up sent", flush=True)
            await wait_analysed(db, 5, 300)
            print("  warm-up analysed", flush=True)
            await db.execute("DELETE FROM event_log WHERE type = 'message.analysed'")
            load_before = load_average()
            took = await drive(hub, texts, args.rate, count, "run-")
            tail = await wait_analysed(db, count, 1200)
            load_after = load_average()
            found = await latencies(db)
            suggested = await db.fetchval(
                """SELECT count(*) FROM event_log WHERE type = 'message.analysed'
                    AND json_array_length(event->'payload'->'suggestions') = 3"""
            )
        finally:
            await db.close()
    return {
        "runtime": args.runtime,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "rate_offered": args.rate,
        "messages": count,
        "send_seconds": round(took, 2),
        "drain_after_send_s": round(tail, 2),
        "analysed_per_s": round(count / (took + tail), 1),
        "with_3_suggestions": suggested,
        "latency_ms": {
            "p50": round(pct(found, 0.5) * 1000, 1),
            "p95": round(pct(found, 0.95) * 1000, 1),
            "p99": round(pct(found, 0.99) * 1000, 1),
            "max": round(max(found) * 1000, 1),
            "mean": round(statistics.mean(found) * 1000, 1),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Banking77 train.csv")
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--smoke", action="store_true", help="20 messages at 10/s")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto", help="HUB_AI_RUNTIME")
    args = parser.parse_args()
    if args.smoke:
        args.rate, args.seconds = 10.0, 2.0
    rows = load(args.data)
    texts = [t for t, _ in rows]
    labels = sorted({label for _, label in rows})
    result = asyncio.run(steady(args, texts, labels))
    name = "ai-latency" if args.runtime == "auto" else f"ai-latency-{args.runtime}"
    out = OUT / f"{name}-smoke.json" if args.smoke else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
