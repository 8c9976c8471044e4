"""Automation rules: how many rules per second the engine evaluates with 200 rules in the account,
and what they add to the webhook-to-agent-socket latency at 1,000 msgs/s.

    .venv/bin/python -m bench.automation.run [--rules 200] [--rate 1000] [--seconds 15] \
        [--rounds 2] [--switch 2] [--sockets 1] [--concurrency 64] [--events 2000] \
        [--batch 100] [--warm-up 3] [--worker-processes 0|1] [--smoke]

Three figures, in one run of one `hub serve` (embedded default):

- ``conditions``: the rule conditions alone over the 200 rules on one message, in this process,
  with the evaluator the engine uses (``rule_evaluator.CompiledRules``: the compiled index's
  candidates, then their conditions), the message's folded text computed afresh per event as
  for a new event: rules per second and µs per event;
- ``engine``: the engine's whole path (claim the event ids, check the account's rules, read the
  conversations, evaluate the 200 rules per event), called in this process on the hub's
  database with events copied from the journal, in batches of ``--batch`` records as the bus
  hands them to the consumer (up to its ``max_batch``, 100): events and rules per second;
- ``latency``: the webhook-to-socket latency as bench/realtime/latency.py measures it (the Go
  load generator's signed webhooks, agent sockets), with the account switched between no rules
  and the 200 rules every ``--switch`` seconds *during* each round (the same rule rows deleted
  and put back): each message counts for the state the hub was in when it was sent, leaving out
  those sent in the half second after a switch. Both states then share the same minute of a
  noisy machine, which separate rounds did not (their baselines differed by 100-160 ms p99).
  The added p50/p99 of a round is "rules" minus "none"; the figure is the rounds' median. A
  second p99 figure pairs each stretch with the rules with its neighbour without them, over every
  switch (``added_p99_ms_switch_median``), so a slow second of the machine enters one pair, not a
  whole round's state. The rounds start after ``--warm-up`` seconds of the same load (default 3),
  so every sender's contact and conversation exist: the first second of a fresh hub creates
  1,000 of them and used to land in round 0's first state.

The rules are message_created rules shaped like real ones (content contains / matches a pattern,
labels, channel, inbox, priority, business hours), none of which matches the load generator's
messages: the cost measured is evaluation, not the changes a rule makes.
Writes bench/results/automation.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import random
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from automation.rule_engine import GROUP, RuleEngine, batch_contexts
from automation.rule_evaluator import CompiledRules, Context
from automation.rule_model import Action, Condition
from automation.rule_store import Rule
from bench.hub_process import layout_env, metric_samples, running_hub, until_settled
from bench.ingest.run import build_loadgen
from bench.realtime.latency import measure, warm_up
from bench.smoke import add_smoke_flag, results_dir
from hub.bus import BusMessage
from hub.events import decode_event
from hub.ids import new_id
from hub.store.db import create_pool
from hub.store.embedded import start_embedded_postgres
from server.cli import settle_heap

RESULTS = Path(__file__).resolve().parents[1] / "results"


def rule_bodies(count: int) -> list[dict[str, Any]]:
    """``count`` rules as the API takes them; none matches the load generator's messages."""
    shapes: list[list[dict[str, Any]]] = [
        [{"field": "content", "op": "contains", "value": "refund"}],
        [{"field": "content", "op": "matches", "value": r"\b(cancel|refund)(ed|s)?\b"}],
        [{"field": "direction", "op": "equals", "value": "inbound"},
         {"field": "labels", "op": "includes", "value": ["vip", "gold"]}],
        [{"field": "channel", "op": "in", "value": ["whatsapp", "email"]}],
        [{"field": "priority", "op": "equals", "value": "urgent"}],
        [{"field": "content", "op": "matches", "value": r"invoice\s*#?\d{4,}"},
         {"field": "business_hours", "op": "equals", "value": "open"}],
    ]  # fmt: skip
    return [
        {
            "name": f"rule {i:03d}",
            "trigger": "message_created",
            "conditions": shapes[i % len(shapes)]
            + [{"field": "content", "op": "not_contains", "value": f"marker-{i}"}],
            "actions": [{"type": "set_priority", "value": "high"}],
        }
        for i in range(count)
    ]


def conditions_rate(bodies: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    rules = [
        Rule(
            id=str(i), name=b["name"], position=i, enabled=True, trigger=b["trigger"],
            match="all", conditions=[Condition(**c) for c in b["conditions"]],
            actions=[Action(**a) for a in b["actions"]], stop_processing=False,
            disabled_reason=None, created_at=None, updated_at=None,  # type: ignore[arg-type]
        )
        for i, b in enumerate(bodies)
    ]  # fmt: skip
    ctx = Context(
        conversation_id="c", inbox_id="i", channel="api", status="open", priority=None,
        labels=(), direction="inbound",
        content="order 123456: ආයුබෝවන්, when will it arrive? sent_ns=1764000000000000000",
    )  # fmt: skip
    compiled = CompiledRules(rules)  # once per version of the rules, as the engine does
    events = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            ctx.__dict__.pop("folded", None)  # a new event's text is folded again
            compiled.matching(ctx)
        events += 100
    elapsed = time.perf_counter() - started
    return {
        "events": events,
        "rules_evaluated": events * len(rules),
        "rules_per_s": round(events * len(rules) / elapsed),
        "us_per_event": round(elapsed / events * 1e6, 2),
    }


async def engine_rate(dsn: str, events: int, batch: int) -> dict[str, Any]:
    """The engine's whole path on copies of a journalled message.received, handed to it in
    batches of ``batch`` records as the bus hands them (``handle``)."""
    pool = await create_pool(dsn, 2)
    try:
        # messages of up to 100 conversations, as the load generator's contacts wrote them
        templates = [
            json.loads(r["event"])
            for r in await pool.fetch(
                """SELECT DISTINCT ON (conversation_id) event::text AS event FROM event_log
                    WHERE type = 'message.received' ORDER BY conversation_id LIMIT 100"""
            )
        ]
        engine = RuleEngine(pool)
        records = []
        for offset in range(events):
            template = templates[offset % len(templates)]
            template["id"] = new_id()
            body = json.dumps(template).encode()
            key = template.get("conversation_id") or ""
            records.append(BusMessage("conversations", key, body, 0, offset, {}))
        # the rules parsed and the statements prepared once, as in a running hub
        await engine.handle([dataclasses.replace(records[0], value=_copy(records[0].value))])
        engine.evaluated = 0
        settle_heap()  # the collector tuned as `hub serve` has it once started
        started = time.perf_counter()
        for i in range(0, events, batch):
            await engine.handle(records[i : i + batch])
        elapsed = time.perf_counter() - started
        # the same rules' conditions alone on the same events' contexts, for the split
        compiled = [rules for _, rules in engine._cache.values()]
        async with pool.acquire() as conn:
            sample = [decode_event(r.value) for r in records[:batch]]
            contexts = [c for found in await batch_contexts(conn, sample) for c in found]
        evaluated = 0
        started = time.perf_counter()
        for _ in range(max(1, events // len(contexts))):
            for ctx in contexts:
                ctx.__dict__.pop("folded", None)
                for rules in compiled:
                    rules.matching(ctx)
                evaluated += 1
        conditions_ms = (time.perf_counter() - started) / evaluated * 1000
        return {
            "events": events,
            "batch": batch,
            "conditions_ms_per_event": round(conditions_ms, 3),
            "events_per_s": round(events / elapsed, 1),
            "rules_evaluated": engine.evaluated,
            "rules_per_s": round(engine.evaluated / elapsed),
            "ms_per_event": round(elapsed / events * 1000, 3),
        }
    finally:
        await pool.close()


def _copy(body: bytes) -> bytes:
    """The same event under a new id."""
    event = json.loads(body)
    event["id"] = new_id()
    return json.dumps(event).encode()


def post(url: str, token: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201, response.read()


def backlog(url: str) -> int:
    """Records the rules engine has not handled yet (its group's bus lag: an event no rule
    matches leaves no row to count)."""
    lag = metric_samples(url).get("hub_bus_lag", [])
    return sum(int(sample.value) for sample in lag if sample.labels.get("group") == GROUP)


async def put_rules(pool: asyncpg.Pool[Any], saved: list[dict[str, Any]], on: bool) -> None:
    """The account's rules: none, or the saved ones back (the same rows, so the same ids)."""
    columns = list(saved[0])
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM automation_rules")
        if on:
            await conn.executemany(
                f"""INSERT INTO automation_rules ({", ".join(columns)})
                    VALUES ({", ".join(f"${i + 1}" for i in range(len(columns)))})""",
                [tuple(r[c] for c in columns) for r in saved],
            )


def switch_rules(
    pool: asyncpg.Pool[Any], saved: list[dict[str, Any]], every: float, first_on: bool
) -> Callable[[asyncio.Event], Awaitable[list[tuple[int, str]]]]:
    """The phases task: rules off and on in turn until the load ends."""

    async def run(ended: asyncio.Event) -> list[tuple[int, str]]:
        timeline: list[tuple[int, str]] = []
        on = first_on
        while not ended.is_set():
            await put_rules(pool, saved, on)
            timeline.append((time.time_ns(), "rules" if on else "none"))
            on = not on
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), every)
        return timeline

    return run


async def latency_rounds(
    args: argparse.Namespace, hub: Any, dsn: str, loadgen: Path
) -> list[dict[str, Any]]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        saved = [dict(r) for r in await pool.fetch("SELECT * FROM automation_rules")]
        if args.warm_up > 0:  # every sender's contact and conversation exist before round 0
            await warm_up(args, hub, loadgen)
            await until_settled(hub.url, pool)
        rounds = []
        for n in range(args.rounds):
            phases = switch_rules(pool, saved, args.switch, first_on=n % 2 == 1)
            result = await measure(
                args,
                hub.url,
                hub.inbox,
                hub.token,
                loadgen,
                run=f"r{n}",
                phases=phases,
                guard_s=min(0.5, args.switch / 4),
            )
            result["rules_backlog_after"] = await asyncio.to_thread(backlog, hub.url)
            print(json.dumps({k: v for k, v in result.items() if k != "per_socket_received"}))
            rounds.append(result)
            result["settled_s"] = await until_settled(hub.url, pool)
        await put_rules(pool, saved, True)  # the rules back for the engine's figure
        return rounds
    finally:
        await pool.close()


def paired_p99(rounds: list[dict[str, Any]]) -> list[float]:
    """p99 of each stretch with the rules minus that of the stretch next to it without them
    (before or after), over every switch of every round: neighbours share the same seconds of
    the machine, so a slow second elsewhere does not enter the difference."""
    added = []
    for r in rounds:
        windows = r.get("by_window", [])
        for a, b in itertools.pairwise(windows):
            states = {a["state"]: a["p99_ms"], b["state"]: b["p99_ms"]}
            if set(states) == {"rules", "none"}:
                added.append(round(states["rules"] - states["none"], 1))
    return added


def median_interval(values: list[float], resamples: int = 2000) -> tuple[float, float] | None:
    """A 95% bootstrap interval for the median (a fixed seed, so a result file can be recomputed
    from its own values): how far the per-switch median can be trusted on a noisy machine."""
    if len(values) < 2:
        return None
    draw = random.Random(0)
    medians = sorted(
        statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples)
    )
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--switch", type=float, default=2.0, help="seconds between switching the rules on and off"
    )
    parser.add_argument("--sockets", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--events", type=int, default=2000, help="events for the engine's rate")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=3,
        metavar="SECONDS",
        help="send the same load this long before the rounds, so that no round measures the "
        "first message of each sender (a fresh hub creates 1,000 contacts in its first second)",
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="records per batch for the engine's rate"
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=None,
        help="HUB_WORKER_PROCESSES for the hub (default: the hub's own, split on two or more "
        "CPUs; 1: the rule engine and the other consumers in a "
        "worker child, off the event loop of the webhooks and the sockets)",
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.rate, args.seconds, args.rounds, args.events = min(args.rate, 100), 2, 1, 20
        args.switch = 0.5
        args.warm_up = min(args.warm_up, 1)
        args.rules = min(args.rules, 20)  # saved one request each: 200 take seconds
    bodies = rule_bodies(args.rules)
    conditions = conditions_rate(bodies, 0.3 if args.smoke else 3.0)
    print("== conditions:", json.dumps(conditions), flush=True)
    loadgen = build_loadgen()
    # the 200 rules are saved in a burst: the API's rate limits are off, as for bench/api
    no_limits = {"HUB_RATE_LIMIT_TOKEN": "0", "HUB_RATE_LIMIT_ADDRESS": "0"}
    split = layout_env(args.worker_processes)
    with running_hub("hub-automation-bench-", extra_env=no_limits | split) as hub:
        for body in bodies:
            post(f"{hub.url}api/v1/automation/rules", hub.token, body)
        dsn = asyncio.run(start_embedded_postgres(hub.data_dir))
        rounds = asyncio.run(latency_rounds(args, hub, dsn, loadgen))
        engine = asyncio.run(engine_rate(dsn, args.events, args.batch))
        print("== engine:", json.dumps(engine), flush=True)
    added_per_round = [
        {
            key: round(r["by_phase"]["rules"][key] - r["by_phase"]["none"][key], 1)
            for key in ("p50_ms", "p99_ms")
        }
        for r in rounds
        if {"rules", "none"} <= set(r["by_phase"])
    ]
    added = {
        key: round(statistics.median(a[key] for a in added_per_round), 1)
        if added_per_round
        else None
        for key in ("p50_ms", "p99_ms")
    }
    paired = paired_p99(rounds)
    result = {
        "rules": args.rules,
        "rate": args.rate,
        "seconds": args.seconds,
        "conditions": conditions,
        "engine": engine,
        "switch_s": args.switch,
        "latency_rounds": rounds,
        "added_per_round": added_per_round,
        "added_p50_ms": added["p50_ms"],
        "added_p99_ms": added["p99_ms"],
        "warm_up_s": args.warm_up,
        "worker_processes": int(hub.split),
        # the same difference per switch instead of per round (see paired_p99)
        "added_p99_ms_per_switch": paired,
        "added_p99_ms_switch_median": round(statistics.median(paired), 1) if paired else None,
        "added_p99_ms_switch_median_95": median_interval(paired),
    }
    results = results_dir(args.smoke, RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    (results / "automation.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "latency_rounds"}, indent=2))


if __name__ == "__main__":
    main()
