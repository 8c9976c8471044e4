"""The analytics consumer's lag under load: how long after a message is committed its rows are in
the analytics store (so in the reports), with signed webhooks at a fixed rate into one
`hub serve` (embedded default: chDB in the hub's process, every other consumer running too).

    .venv/bin/python -m bench.analytics.lag [--rate 1000] [--seconds 10] [--sockets 1]

The load is bench/realtime/latency.py's (the Go load generator's signed API-channel webhooks,
open loop, and agent sockets). Two figures of the analytics consumer, read from the hub itself:

- ``hub_analytics_event_lag_seconds`` (``/metrics``): per event, from its ``occurred_at`` (the
  ingest transaction) to its rows written to chDB; p50/p90/p99 and the share under 2 s from the
  histogram's buckets (a quantile is given as its bucket's upper bound);
- ``analytics_lag`` (``/readyz``, every 0.25 s): records the consumer has not handled yet; its
  maximum during the run, and how long after the load stopped it was back to 0.

Writes bench/results/analytics-lag.json (``--smoke``: .artefacts/bench).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.hub_process import running_hub
from bench.ingest.run import build_loadgen
from bench.realtime.latency import load_arguments, measure
from bench.smoke import results_dir

RESULTS = Path(__file__).resolve().parents[1] / "results"
METRICS_TOKEN = "bench-analytics-lag-metrics"
BUCKET = re.compile(r'^hub_analytics_event_lag_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', re.M)


async def _readyz(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}readyz") as response:
        found: dict[str, Any] = (await response.json()).get("checks", {})
        return found


async def _sample(base: str, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            checks = await _readyz(http, base)
            samples.append((round(time.monotonic() - started, 2), int(checks["analytics_lag"])))
            await asyncio.sleep(0.25)


def quantiles(metrics: str) -> dict[str, Any]:
    """p50/p90/p99 (bucket upper bounds, seconds) and the share under 2 s, from the histogram."""
    buckets = [(float(le), float(n)) for le, n in BUCKET.findall(metrics)]
    total = buckets[-1][1] if buckets else 0.0

    def at(q: float) -> float | None:
        return next((le for le, n in buckets if n >= q * total), None) if total else None

    under_2 = next((n for le, n in buckets if le == 2.0), 0.0)
    return {
        "events": int(total),
        "p50_s_at_most": at(0.50),
        "p90_s_at_most": at(0.90),
        "p99_s_at_most": at(0.99),
        "share_under_2s": round(under_2 / total, 4) if total else None,
    }


async def run(base: str, hub: Any, args: Any, loadgen: Path) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(base, samples, stop))
    load = await measure(args, hub.url, hub.inbox, hub.token, loadgen)
    ended = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while (await _readyz(http, base))["analytics_lag"] and time.monotonic() - ended < 120:
            await asyncio.sleep(0.1)
        drained_s = round(time.monotonic() - ended, 2)
        stop.set()
        await sampler
        headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        async with http.get(f"{base}metrics", headers=headers) as response:
            metrics = await response.text()
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "webhooks_ok": load["webhooks_ok"],
        "webhooks_failed": load["webhooks_failed"],
        "event_lag": quantiles(metrics),
        "max_records_behind": max((n for _, n in samples), default=0),
        "back_to_zero_s_after_load": drained_s,
        "records_behind_samples": samples,
        "socket_p99_ms": load["p99_ms"],
    }


def main() -> None:
    args = load_arguments(__doc__ or "")
    if args.worker_processes:
        sys.exit("the worker child's /metrics are not the gateway's: run it in one process")
    loadgen = build_loadgen()
    env = {"HUB_METRICS_TOKEN": METRICS_TOKEN}
    with running_hub("hub-analytics-lag-", extra_env=env) as hub:
        result = asyncio.run(run(hub.url, hub, args, loadgen))
    out = results_dir(args.smoke, RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "analytics-lag.json").write_text(json.dumps(result, indent=2))
    shown = {k: v for k, v in result.items() if k != "records_behind_samples"}
    print(json.dumps(shown, indent=2))


if __name__ == "__main__":
    main()
