"""Webhook-to-socket latency on the embedded default: signed API-channel webhooks at a fixed rate
(open loop, default 1,000 msgs/s), and agent sockets measuring, for every message.received
event, the time from the load generator's send to the socket's receipt. The sockets are held by
the Go program ``bench/realtime/agents`` (authenticated ``/agent`` joins, every ``events`` batch
checked for order and counted), so the clients take a few percent of a core where 20
python-socketio clients took a quarter of the machine's two.

    .venv/bin/python -m bench.realtime.latency [--rate 1000] [--seconds 15] [--sockets 1]
        [--pg-statements] [--warm-up SECONDS]

Both ends read the same clock (one machine). Besides the whole run's percentiles it reports the
p99 of each second of the run: on a fresh hub the first second creates every sender's contact
and conversation, which ``--warm-up`` (the same load first, not measured) takes out of the
figures. Writes bench/results/realtime-latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from bench import pg_statements
from bench.hub_process import (
    cpu_seconds,
    layout_env,
    metric_samples,
    running_hub,
    transactions,
    until_settled,
)
from bench.ingest.run import build_loadgen
from bench.realtime.fanout_path import build_agents
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


def _stretches(
    samples: list[tuple[int, float]], timeline: list[tuple[int, str]], guard_s: float
) -> list[list[float]]:
    """The latencies of each stretch of ``timeline`` (from one switch to the next), leaving out a
    message sent within ``guard_s`` after the switch (the previous state's work may still run)."""
    starts = [t for t, _ in timeline]
    grouped: list[list[float]] = [[] for _ in timeline]
    for sent, ms in samples:
        i = bisect.bisect_right(starts, sent) - 1
        if i >= 0 and sent - starts[i] >= guard_s * 1e9:
            grouped[i].append(ms)
    return grouped


def by_window(
    samples: list[tuple[int, float]], timeline: list[tuple[int, str]], guard_s: float
) -> list[dict[str, Any]]:
    """Each stretch between two switches on its own, in order: its state, messages and p99."""
    return [
        {"state": state, "events": len(values), "p99_ms": round(percentile(values, 0.99), 1)}
        for (_, state), values in zip(timeline, _stretches(samples, timeline, guard_s), strict=True)
        if values
    ]


def by_phase(
    samples: list[tuple[int, float]], timeline: list[tuple[int, str]], guard_s: float
) -> dict[str, dict[str, float]]:
    """Latencies grouped by the state the hub was in when the webhook was sent."""
    grouped: dict[str, list[float]] = {}
    for (_, state), values in zip(timeline, _stretches(samples, timeline, guard_s), strict=True):
        grouped.setdefault(state, []).extend(values)
    return {
        name: {
            "events": len(values),
            "p50_ms": round(percentile(values, 0.50), 1),
            "p99_ms": round(percentile(values, 0.99), 1),
        }
        for name, values in sorted(grouped.items())
        if values
    }


async def warm_up(args: argparse.Namespace, hub: Any, loadgen: Path) -> None:
    """``args.warm_up`` seconds of the same load, not measured: every sender's contact and
    conversation exist afterwards (the caller waits until the hub has caught up)."""
    print(f"== warm-up: {args.warm_up} s of the same load", flush=True)
    warm = argparse.Namespace(**{**vars(args), "seconds": args.warm_up})
    await measure(warm, hub.url, hub.inbox, hub.token, loadgen, run="warm-up")


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
    samples_file = Path(tempfile.mkstemp(prefix="latency-samples-")[1])
    agents = await asyncio.create_subprocess_exec(
        str(await asyncio.to_thread(build_agents)),
        "-url",
        url,
        "-n",
        str(args.sockets),
        "-token",
        token,
        "-samples",
        str(samples_file),
        "-drain",
        "2s",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        return await _measure(
            args, agents, samples_file, inbox, loadgen, bases, run, phases, guard_s, connected
        )
    finally:
        if agents.returncode is None:
            agents.kill()
            await agents.wait()
        samples_file.unlink(missing_ok=True)


async def _agents_say(agents: asyncio.subprocess.Process, event: str) -> dict[str, Any]:
    """The agents program's next JSON line that is ``event``."""
    assert agents.stdout is not None
    while raw := await agents.stdout.readline():
        if raw.startswith(b"{"):
            found: dict[str, Any] = json.loads(raw)
            if found.get("event") == event:
                return found
    raise SystemExit(f"the agents program ended before {event!r} (exit {await agents.wait()})")


async def _ask(agents: asyncio.subprocess.Process, command: str, event: str) -> dict[str, Any]:
    assert agents.stdin is not None
    agents.stdin.write(f"{command}\n".encode())
    await agents.stdin.drain()
    return await _agents_say(agents, event)


async def _measure(
    args: argparse.Namespace,
    agents: asyncio.subprocess.Process,
    samples_file: Path,
    inbox: dict[str, Any],
    loadgen: Path,
    bases: list[str],
    run: str,
    phases: Phases | None,
    guard_s: float,
    connected: Callable[[], Awaitable[None]] | None,
) -> dict[str, Any]:
    joined = await _agents_say(agents, "connected")
    if joined["clients"] != args.sockets:
        raise SystemExit(f"{joined['clients']} of {args.sockets} agent sockets joined: {joined}")
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
    # the last events: until every socket has one per acknowledged webhook, or 2 s without any
    delivered = await _ask(agents, f"expect {sent['ok']}", "delivered")
    await _ask(agents, "samples", "samples")
    assert agents.stdin is not None
    agents.stdin.write(b"quit\n")
    await agents.stdin.drain()
    await agents.wait()
    latencies: list[list[float]] = [[] for _ in range(args.sockets)]
    samples: list[tuple[int, float]] = []  # (sent ns, ms) of every receipt
    after_event: list[float] = []  # from the event's occurred_at (inside the ingest) to receipt
    for row in samples_file.read_text().splitlines():
        socket, sent_ns, received_ns, occurred_ns = map(int, row.split())
        ms = (received_ns - sent_ns) / 1e6
        latencies[socket].append(ms)
        samples.append((sent_ns, ms))
        if occurred_ns:
            after_event.append((received_ns - occurred_ns) / 1e6)
    everyone = [x for per_socket in latencies for x in per_socket]
    first_sent = min((at for at, _ in samples), default=0)
    each_second: dict[int, list[float]] = {}
    for at, ms in samples:
        each_second.setdefault((at - first_sent) // 1_000_000_000, []).append(ms)
    extra = (
        {
            "by_phase": by_phase(samples, timeline, guard_s),
            "by_window": by_window(samples, timeline, guard_s),
        }
        if phases is not None
        else {}
    )
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "sockets": args.sockets,
        "webhooks_ok": sent["ok"],
        "webhooks_failed": sent["failed"],
        "events_measured": len(everyone),
        "per_socket_received": [len(x) for x in latencies],
        "out_of_order": delivered["out_of_order"],
        "beyond_one_each": delivered["extra"],
        "sockets_dropped": delivered["dropped"],
        "p50_ms": round(percentile(everyone, 0.50), 1),
        "p90_ms": round(percentile(everyone, 0.90), 1),
        "p99_ms": round(percentile(everyone, 0.99), 1),
        "max_ms": round(max(everyone, default=0.0), 1),
        "webhook_p99_ms": sent["p99_ms"],
        "from_event_p50_ms": round(percentile(after_event, 0.50), 1),
        "from_event_p99_ms": round(percentile(after_event, 0.99), 1),
        # by the second of the run the webhook was sent in: a slow start shows here
        "p99_ms_by_second": [
            round(percentile(each_second[second], 0.99), 1) for second in sorted(each_second)
        ],
        **extra,
    }


def load_arguments(
    description: str, pg_statements: bool = False, warm_up: bool = False
) -> argparse.Namespace:
    """The load every latency benchmark takes: webhook rate, duration, agent sockets (and, for
    a benchmark that has them, ``--pg-statements`` and ``--warm-up``)."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    if pg_statements:
        parser.add_argument(
            "--pg-statements",
            action="store_true",
            help="load pg_stat_statements in the hub's embedded PostgreSQL and report the "
            "statements that took the most time during the load",
        )
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
    if warm_up:
        parser.add_argument(
            "--warm-up",
            type=int,
            default=0,
            metavar="SECONDS",
            help="first send the same load (same senders, other message ids) for this long and "
            "wait until the hub has caught up, so the measured messages go to existing contacts "
            "and conversations; 0 measures a fresh hub, whose first second creates every sender",
        )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=None,
        help="HUB_WORKER_PROCESSES for the hub (default: the hub's own, split on two or more "
        "CPUs; 1: gateway and a worker child)",
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.rate, args.seconds = min(args.rate, 100), 1
        if warm_up:
            args.warm_up = min(args.warm_up, 1)
    return args


#: the hub's histograms of the steps between a webhook and the sockets (``/metrics``)
STEPS = {
    "webhook request in the hub": ("hub_http_request_duration_seconds", "method", "POST"),
    "ingest wait (submit to result)": ("hub_group_commit_wait_seconds", "committer", "ingest"),
    "ingest transaction": ("hub_group_commit_seconds", "committer", "ingest"),
    "event age when published": ("hub_event_age_seconds", "step", "published"),
    "replay-log transaction": ("hub_group_commit_seconds", "committer", "realtime-log"),
    "event age when logged": ("hub_event_age_seconds", "step", "logged"),
    "event age when sent": ("hub_event_age_seconds", "step", "sent"),
}


def step_buckets(base: str) -> dict[str, list[tuple[float, float]]]:
    """Cumulative (upper bound, count) buckets of each of :data:`STEPS` so far."""
    families = metric_samples(base)
    out: dict[str, list[tuple[float, float]]] = {}
    for step, (name, label, value) in STEPS.items():
        summed: dict[float, float] = {}  # over the other labels (a route's statuses)
        for sample in families.get(name, []):
            if sample.name == f"{name}_bucket" and sample.labels.get(label) == value:
                le = float(sample.labels["le"])
                summed[le] = summed.get(le, 0.0) + sample.value
        out[step] = sorted(summed.items())
    return out


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus's ``histogram_quantile``: linear within the bucket the quantile falls in."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower


def step_quantiles(
    before: dict[str, list[tuple[float, float]]], after: dict[str, list[tuple[float, float]]]
) -> dict[str, dict[str, float | None]]:
    """p50 and p99 (ms, from bucket bounds) of each step over the run, and its batch count."""
    out: dict[str, dict[str, float | None]] = {}
    for step, buckets in after.items():
        earlier = dict(before.get(step, []))
        run = [(le, count - earlier.get(le, 0.0)) for le, count in buckets]
        p50, p99 = bucket_quantile(run, 0.5), bucket_quantile(run, 0.99)
        out[step] = {
            "batches": run[-1][1] if run else 0,
            "p50_ms": None if p50 is None else round(p50 * 1000, 1),
            "p99_ms": None if p99 is None else round(p99 * 1000, 1),
        }
    return out


def bus_batches(base: str) -> dict[str, float]:
    """Batches handed to each consumer group so far (the hub's ``/metrics``)."""
    return {
        sample.labels["group"]: sample.value
        for sample in metric_samples(base).get("hub_bus_batches", [])
        if sample.name == "hub_bus_batches_total"
    }


async def costed(args: argparse.Namespace, hub: Any, dsn: str, loadgen: Path) -> dict[str, Any]:
    """:func:`measure`, with what the webhooks cost until the hub caught up with them: its CPU
    (with a worker child) and PostgreSQL's transactions, per accepted webhook."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    statements = args.pg_statements
    cpu, xacts, batches = 0.0, 0, {}
    steps: dict[str, list[tuple[float, float]]] = {}

    async def baseline() -> None:  # once the sockets are in: their sign-in is not the webhooks'
        nonlocal cpu, xacts, batches, steps
        cpu, xacts = cpu_seconds(hub.pid), await transactions(pool)
        batches = await asyncio.to_thread(bus_batches, hub.url)
        steps = await asyncio.to_thread(step_buckets, hub.url)
        if statements:
            await pg_statements.reset(pool)

    try:
        if args.warm_up > 0:
            await warm_up(args, hub, loadgen)
            await until_settled(hub.url, pool)
        result = await measure(args, hub.url, hub.inbox, hub.token, loadgen, connected=baseline)
        result["warm_up_s"] = args.warm_up
        result["settled_s"] = await until_settled(hub.url, pool)
        if statements:
            result["pg_statements"] = await pg_statements.top(pool)
        accepted = max(result["webhooks_ok"], 1)
        after = await asyncio.to_thread(bus_batches, hub.url)
        result["bus_batches_per_1000_webhooks"] = {
            group: round((n - batches.get(group, 0)) * 1000 / accepted)
            for group, n in sorted(after.items())
        }
        result["steps"] = step_quantiles(steps, await asyncio.to_thread(step_buckets, hub.url))
        result["hub_cpu_us_per_webhook"] = round((cpu_seconds(hub.pid) - cpu) * 1e6 / accepted)
        result["pg_transactions_per_webhook"] = round(
            (await transactions(pool) - xacts) / accepted, 2
        )
        return result
    finally:
        await pool.close()


def main() -> None:
    args = load_arguments(__doc__, pg_statements=True, warm_up=True)
    loadgen = build_loadgen()
    split = layout_env(args.worker_processes)
    prepare = pg_statements.preload if args.pg_statements else None
    with running_hub("hub-rt-bench-", extra_env=split, prepare=prepare) as hub:
        dsn = asyncio.run(start_embedded_postgres(hub.data_dir))
        result = asyncio.run(costed(args, hub, dsn, loadgen))
        result["worker_processes"] = int(hub.split)
    results = results_dir(args.smoke, RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    (results / "realtime-latency.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if "pg_statements" in result:
        print(pg_statements.table(result["pg_statements"]))


if __name__ == "__main__":
    main()
