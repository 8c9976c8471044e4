"""The soak: a steady load for a long time (default 1 hour at 500 msgs/s) with agent sockets
connected, sampling every few seconds what would show a leak or a slow drift: the hub process's
RSS and open file descriptors, its event-loop lag (``hub_event_loop_lag_seconds`` from
``/metrics``) and webhook-to-socket latency (p50/p99 per window, from a message's first POST to its
arrival on the first agent socket). Writes JSON and a PNG chart (matplotlib: the ``bench`` extra).

    .venv/bin/uv pip install --python .venv/bin/python -e '.[bench]'
    flock /tmp/bench.lock .venv/bin/python -m bench.faults.soak                  # 1 hour
    flock /tmp/bench.lock .venv/bin/python -m bench.faults.soak --duration 300   # 5 minutes

Goal: flat memory after warm-up, p99 stable, nothing lost (every acknowledged message reached
every agent socket).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.faults.agents import StreamAgent
from bench.faults.driver import Driver, api_body
from bench.faults.run import Hubs, metric, progress, workdir
from bench.faults.soak_watch import Watch
from bench.smoke import add_smoke_flag, results_dir
from channels._base.signatures import sign_hmac_sha256
from hub.config import Config

RESULTS = Path(__file__).resolve().parents[1] / "results"


class SoakAgent(StreamAgent):
    """Counts instead of keeping every id (an hour is ~2 million messages); the probe agent also
    records each message's latency from its first POST."""

    def __init__(
        self, base: str, token: str, name: str, sent_at: dict[str, float] | None = None
    ) -> None:
        super().__init__(base, token, name)
        self.count = 0
        self.sent_at = sent_at
        self.latencies: list[float] = []

    def take(self, batch: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for item in batch:
            seq = int(item["seq"])
            if seq <= self.last_seq:
                self.dropped_by_seq += 1
                continue
            self.last_seq = seq
            if item["type"] == "message.received":
                self.count += 1
                if self.sent_at is not None:
                    first = self.sent_at.pop(item["event"]["payload"]["provider_message_id"], None)
                    if first is not None:
                        self.latencies.append(now - first)


@dataclasses.dataclass
class Sample:
    t: float  # seconds since the load started
    rss_mib: float
    fds: int
    loop_lag_ms: float
    p50_ms: float | None
    p99_ms: float | None
    acked: int  # acknowledged so far
    delivered_min: int  # the fewest messages any agent socket has received so far
    window_rate: float  # acknowledged a second in this window
    watch: dict[str, Any]  # the machine, PostgreSQL and the soak process (soak_watch.Watch)


def rss_and_fds(pid: int) -> tuple[float, int]:
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def soak(
    duration: float, rate: float, agents: int, every: float, pg_log: Path
) -> dict[str, Any]:
    async with workdir(keep=False) as work:
        # the product's replay log size, so the hour includes its trim (the fault scenarios keep
        # everything instead: their reconciliation replays from the start)
        keep = str(Config.realtime_replay_events)
        hubs = Hubs(work, "embedded", 1, {"HUB_REALTIME_REPLAY_EVENTS": keep})
        progress(f"soak: starting the hub in {work}")
        await hubs.setup(agents)
        pid = hubs.procs[0].pid if hubs.procs[0] is not None else 0
        sent_at: dict[str, float] = {}
        secret = hubs.inbox["signing_secret"]

        def make(pmid: str) -> tuple[bytes, dict[str, str]]:
            sent_at.setdefault(pmid, time.monotonic())
            body = api_body(pmid)
            return body, {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign_hmac_sha256(secret, body),
            }

        stream = [
            SoakAgent(hubs.bases[0], hubs.tokens[i], f"agent{i}", sent_at if i == 0 else None)
            for i in range(agents)
        ]
        samples: list[Sample] = []
        acked_total = 0
        pgdata = work / "data0" / "postgres"
        watch = Watch(hubs.dsn, pid, pgdata)
        await watch.start()
        try:
            for agent in stream:
                await agent.start()
            progress(f"{agents} agent sockets connected; {rate:g} msgs/s for {duration:g} s")
            driver = Driver(hubs.urls(), secret, rate, make=make)
            load = asyncio.create_task(driver.run(duration))
            started = time.monotonic()
            last_acked, last_t = 0, 0.0
            while not load.done():
                await asyncio.wait({load}, timeout=every)
                acked_total += len(driver.acked)  # counted, then forgotten (memory)
                driver.acked = Counter()
                probe = stream[0]
                window, probe.latencies = probe.latencies, []
                rss, fds = rss_and_fds(pid)
                try:
                    lag = await metric(hubs.bases[0], "hub_event_loop_lag_seconds")
                except aiohttp.ClientError:
                    lag = float("nan")
                t = time.monotonic() - started
                p50, p99 = percentile(window, 0.5), percentile(window, 0.99)
                sample = Sample(
                    round(t, 1),
                    round(rss, 1),
                    fds,
                    round(lag * 1000, 2),
                    None if p50 is None else round(p50 * 1000, 2),
                    None if p99 is None else round(p99 * 1000, 2),
                    acked_total,
                    min(a.count for a in stream),
                    round((acked_total - last_acked) / max(t - last_t, 1e-9), 1),
                    await watch.take(),
                )
                last_acked, last_t = acked_total, t
                samples.append(sample)
                progress(
                    f"t={sample.t:.0f}s acked {acked_total} ({sample.window_rate:g}/s), RSS "
                    f"{sample.rss_mib} MiB, fds {fds}, loop lag {sample.loop_lag_ms} ms, latency "
                    f"p50 {sample.p50_ms} ms p99 {sample.p99_ms} ms, non-2xx "
                    f"{dict(driver.statuses)}; {sample.watch}"
                )
            await load
            acked_total += len(driver.acked)
            async with asyncio.timeout(60):
                while min(a.count for a in stream) < acked_total:
                    await asyncio.sleep(0.2)
        except TimeoutError:
            progress("the agents did not catch up within 60 s")
        finally:
            await watch.stop()
            for agent in stream:
                await agent.stop()
            logs = sorted((pgdata / "log").glob("*")) if (pgdata / "log").is_dir() else []
            if (pgdata / "log").is_file():
                logs = [pgdata / "log"]
            pg_log.write_text("".join(p.read_text(errors="replace") for p in logs))
            await hubs.teardown()
        return summarize(duration, rate, agents, every, samples, acked_total, stream, driver)


def summarize(
    duration: float,
    rate: float,
    agents: int,
    every: float,
    samples: list[Sample],
    acked: int,
    stream: list[SoakAgent],
    driver: Driver,
) -> dict[str, Any]:
    warm = [s for s in samples if s.t >= min(60.0, duration / 5)] or samples
    p99s = [s.p99_ms for s in warm if s.p99_ms is not None]
    return {
        "duration_s": duration,
        "rate": rate,
        "agents": agents,
        "sample_every_s": every,
        "generated": driver.generated,
        "acknowledged": acked,
        "delivered_min": min(a.count for a in stream),
        "non_2xx": dict(driver.statuses),
        "reconnects": [a.reconnects for a in stream],
        "rss_mib_after_warmup": {"first": warm[0].rss_mib, "last": warm[-1].rss_mib,
                                 "max": max(s.rss_mib for s in warm)},
        "fds_after_warmup": {"first": warm[0].fds, "last": warm[-1].fds,
                             "max": max(s.fds for s in warm)},
        "loop_lag_ms_max": max(s.loop_lag_ms for s in samples),
        "p99_ms_after_warmup": {"median": statistics.median(p99s) if p99s else None,
                                "max": max(p99s) if p99s else None},
        "p99_stability": stability([dataclasses.asdict(s) for s in warm]),
        "samples": [dataclasses.asdict(s) for s in samples],
    }  # fmt: skip


def to_json(result: dict[str, Any]) -> str:
    """The summary indented, each sample on one line: an hour is 720 of them."""
    head = json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2)
    rows = ",\n".join("    " + json.dumps(s) for s in result["samples"])
    return f'{head[:-2]},\n  "samples": [\n{rows}\n  ]\n}}\n'


def stability(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether p99 held: the median window's p99 in the first and the last ten minutes (a drift
    shows as a difference), and how many windows went past 250 ms and 1 s."""
    p99 = [(s["t"], s["p99_ms"]) for s in samples if s["p99_ms"] is not None]
    if not p99:
        return {}
    start, end = p99[0][0], p99[-1][0]
    first = [v for t, v in p99 if t < start + 600]
    last = [v for t, v in p99 if t > end - 600]
    return {
        "windows": len(p99),
        "median_first_10_min": round(statistics.median(first), 1),
        "median_last_10_min": round(statistics.median(last), 1),
        "over_250_ms": sum(v > 250 for _, v in p99),
        "over_1_s": sum(v > 1000 for _, v in p99),
        "max": max(v for _, v in p99),
    }


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    t = [s["t"] / 60 for s in samples]
    watched = all("watch" in s for s in samples)
    fig, axes = plt.subplots(5 if watched else 4, 1, figsize=(10, 13.5 if watched else 11),
                             sharex=True)  # fmt: skip
    axes[0].plot(t, [s["rss_mib"] for s in samples])
    axes[0].set_ylabel("hub RSS (MiB)")
    axes[1].plot(t, [s["fds"] for s in samples])
    axes[1].set_ylabel("open fds")
    axes[2].plot(t, [s["loop_lag_ms"] for s in samples])
    axes[2].set_ylabel("event-loop lag (ms)")
    axes[3].plot(t, [s["p50_ms"] for s in samples], label="p50")
    axes[3].plot(t, [s["p99_ms"] for s in samples], label="p99")
    axes[3].set_ylabel("webhook → socket (ms)")
    axes[3].legend()
    if watched:  # what the slow windows coincide with: WAL bursts, and the disk stalling
        every = result["sample_every_s"]
        axes[4].plot(t, [s["watch"]["wal_mib"] / every for s in samples], label="WAL MiB/s")
        stalled = [10 * s["watch"]["io_pressure"] for s in samples]
        axes[4].plot(t, stalled, label="IO pressure (share of time stalled, x10)")
        axes[4].set_ylabel("PostgreSQL / disk")
        axes[4].legend()
    axes[-1].set_xlabel("minutes")
    for ax in axes:
        top = max(
            (y for line in ax.get_lines() for y in line.get_ydata() if y is not None), default=1
        )
        ax.set_ylim(0, float(top) * 1.15 or 1)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"soak: {result['rate']:g} msgs/s, {result['agents']} agent sockets, "
        f"{result['duration_s'] / 60:g} min; acknowledged {result['acknowledged']:,}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=3600, help="seconds of load")
    parser.add_argument("--rate", type=float, default=500, help="new messages a second")
    parser.add_argument("--agents", type=int, default=4, help="agent sockets")
    parser.add_argument("--every", type=float, default=5, help="seconds between samples")
    parser.add_argument("--json", type=Path, default=RESULTS / "soak.json")
    parser.add_argument("--png", type=Path, default=RESULTS / "soak.png")
    parser.add_argument(
        "--pg-log",
        type=Path,
        default=RESULTS / "soak-postgres.log",
        help="where to copy PostgreSQL's log (checkpoints, autovacuum, slow SQL)",
    )
    parser.add_argument("--chart-only", action="store_true", help="redraw the PNG from --json")
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; everything into the ignored .artefacts/bench
        out = results_dir(True, RESULTS)
        args.duration, args.rate, args.agents, args.every = 3, 50, 1, 1
        if not args.chart_only:
            args.json = out / "soak.json"
        args.png, args.pg_log = out / "soak.png", out / "soak-postgres.log"
    if args.chart_only:
        result = json.loads(args.json.read_text())
        chart(result, args.png)
        warm = [s for s in result["samples"] if s["t"] >= min(60.0, result["duration_s"] / 5)]
        progress(f"p99 stability after warm-up: {stability(warm)}")
        return 0
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(soak(args.duration, args.rate, args.agents, args.every, args.pg_log))
    args.json.write_text(to_json(result))
    if args.smoke and importlib.util.find_spec("matplotlib") is None:
        progress("no chart: matplotlib (the bench extra) is not installed")
    else:
        chart(result, args.png)
    progress(
        f"done: acknowledged {result['acknowledged']}, delivered to every agent >= "
        f"{result['delivered_min']}; RSS after warm-up {result['rss_mib_after_warmup']}; fds "
        f"{result['fds_after_warmup']}; loop lag max {result['loop_lag_ms_max']} ms; p99 "
        f"{result['p99_ms_after_warmup']}; wrote {args.json} and {args.png}"
    )
    return 0 if result["delivered_min"] >= result["acknowledged"] > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
