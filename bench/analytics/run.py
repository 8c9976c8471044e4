"""Analytics at scale: N message events over a year for 50 inboxes and 200 agents, written into
the embedded store (chDB) through the same rows and insert path as the consumer, then the
pre-aggregated rows rebuilt for every closed day (analytics.rollups), then every report timed over
the whole year; first response, next response and resolution also in business hours (40 inboxes
have office hours and holidays: :func:`schedules`).

    python -m bench.analytics.run --events 10000000      # the benchmark (BENCHMARKS.md)
    python -m bench.analytics.run --smoke                # tiny, for CI (.artefacts/analytics)

Load is diurnal in each inbox's time zone (Asia/Colombo, Europe/London, America/New_York...):
conversations start mostly in office hours; each has one to nine inbound messages, agent replies
after minutes to hours, and most are resolved. Each inbox belongs to one of ten teams; one
conversation in ten is handed to another team after its first messages. Every conversation is
assigned soon after it opens (one in seven first to another agent, then handed to the one who
replies and resolves it). The 200 agents work shifts (:func:`shifts`): five days a week, about
eight hours from between 08:00 and 10:00 in their time zone, online with one or two busy spells,
recorded as ``agent.presence_changed`` rows.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from analytics import business_time, reports, rollups
from analytics.backend import ChdbBackend
from analytics.rows import ConversationRow, MessageRow, PresenceRow, Rows
from analytics.store import AnalyticsStore
from hub.business_hours import Schedule, Span

ZONES = ["Asia/Colombo", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]
CHANNELS = ["whatsapp", "api", "sms", "voice", "email"]
#: share of a day's conversations that start in each local hour
HOURLY = [0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 1, 2, 4, 6, 7, 7, 6, 6, 7, 7, 6, 5, 4, 3, 2, 1.5, 1, 0.5]


def shifts(n_agents: int = 200, seed: int = 5, account: str = "acc") -> list[PresenceRow]:
    """A year of presence changes for ``agent-000``... : each agent works five days a week (two
    days off of their own), from between 08:00 and 10:00 in their time zone for seven to nine
    hours, online with one or two busy spells of 15 to 60 minutes, then offline."""
    rng = random.Random(seed)
    rows: list[PresenceRow] = []
    for i in range(n_agents):
        agent, zone, off = f"agent-{i:03d}", ZoneInfo(ZONES[i % 5]), {i % 7, (i + 3) % 7}

        def change(moment: datetime, status: str, agent: str = agent) -> None:
            at = moment.astimezone(UTC)  # to the millisecond, as the store keeps it
            at = at.replace(microsecond=at.microsecond // 1000 * 1000)
            rows.append(PresenceRow(f"p-{len(rows)}", account, at, "", "", "", agent, status))

        for d in range(365):
            day = date(2025, 1, 1) + timedelta(days=d)
            if day.weekday() in off:
                continue
            begin = datetime(day.year, day.month, day.day, 8, tzinfo=zone) + timedelta(
                minutes=rng.randrange(120)
            )
            end = begin + timedelta(hours=rng.uniform(7, 9))
            change(begin, "online")
            at = begin
            for _ in range(rng.randint(1, 2)):
                at += timedelta(minutes=rng.uniform(60, 180))
                back = at + timedelta(minutes=rng.uniform(15, 60))
                if back >= end:
                    break
                change(at, "busy")
                change(back, "online")
                at = back
            change(end, "offline")
    return rows


def generate(n_messages: int, seed: int = 7) -> Iterator[Rows]:
    """Yields Rows of about 100,000 messages each, until ``n_messages`` are made."""
    rng = random.Random(seed)
    moves = random.Random(seed + 1)  # team changes: their own stream, the rest stays as it was
    assigns = random.Random(seed + 2)  # assignments: their own stream too
    start = datetime(2025, 1, 1, tzinfo=UTC)
    inboxes = [(f"inbox-{i:02d}", CHANNELS[i % 5], ZoneInfo(ZONES[i % 5])) for i in range(50)]
    agents = [f"agent-{i:03d}" for i in range(200)]
    hours = list(range(24))
    made = 0
    conv = 0
    rows = Rows()
    while made < n_messages:
        inbox, channel, zone = inboxes[rng.randrange(50)]
        day = start + timedelta(days=rng.randrange(365))
        local = day.astimezone(zone).replace(hour=0, minute=0, second=0)
        hour = rng.choices(hours, HOURLY)[0]
        opened = (local + timedelta(hours=hour, seconds=rng.randrange(3600))).astimezone(UTC)
        conv += 1
        cid, contact = f"conv-{conv}", f"contact-{conv % 400_000}"
        agent = agents[rng.randrange(200)]
        team = f"team-{int(inbox[-2:]) % 10}"
        rows.conversation_events.append(
            ConversationRow(
                f"e{conv}c",
                "acc",
                opened,
                cid,
                inbox,
                channel,
                "created",
                "open",
                "",
                contact,
                contact,
                team,
            )
        )
        at = opened
        moved = moves.random() < 0.1  # one in ten is handed to another team on the way
        first = agent if assigns.random() >= 1 / 7 else agents[assigns.randrange(200)]
        rows.conversation_events.append(
            ConversationRow(
                f"e{conv}a",
                "acc",
                opened + timedelta(seconds=assigns.expovariate(1 / 60)),
                cid,
                inbox,
                channel,
                "assigned",
                "open",
                first,
                "",
                "system",
                team,
            )
        )
        handover = first != agent
        for k in range(rng.randint(1, 9)):
            at += timedelta(seconds=rng.expovariate(1 / 120))
            rows.messages.append(
                MessageRow(
                    f"e{conv}i{k}",
                    "acc",
                    at,
                    cid,
                    inbox,
                    channel,
                    "inbound",
                    0,
                    "",
                    contact,
                    f"m{conv}i{k}",
                )
            )
            made += 1
            if handover and k == 0:  # handed to the agent who answers, after the first message
                rows.conversation_events.append(
                    ConversationRow(
                        f"e{conv}h",
                        "acc",
                        at + timedelta(seconds=1 + assigns.expovariate(1 / 300)),
                        cid,
                        inbox,
                        channel,
                        "assigned",
                        "open",
                        agent,
                        "",
                        first,
                        team,
                    )
                )
            if moved and k == 1:
                team = f"team-{moves.randrange(10)}"
                rows.conversation_events.append(
                    ConversationRow(
                        f"e{conv}t",
                        "acc",
                        at,
                        cid,
                        inbox,
                        channel,
                        "updated",
                        "open",
                        "",
                        "",
                        agent,
                        team,
                    )
                )
            if rng.random() < 0.7:
                at += timedelta(seconds=rng.lognormvariate(5, 1.2))
                rows.messages.append(
                    MessageRow(
                        f"e{conv}o{k}",
                        "acc",
                        at,
                        cid,
                        inbox,
                        channel,
                        "outbound",
                        0,
                        agent,
                        "",
                        f"m{conv}o{k}",
                    )
                )
                made += 1
        if rng.random() < 0.85:
            at += timedelta(seconds=rng.lognormvariate(7, 1.5))
            rows.conversation_events.append(
                ConversationRow(
                    f"e{conv}r",
                    "acc",
                    at,
                    cid,
                    inbox,
                    channel,
                    "resolved",
                    "resolved",
                    agent,
                    "",
                    agent,
                    team,
                )
            )
        if len(rows.messages) >= 100_000:
            yield rows
            rows = Rows()
    yield rows


#: holidays of the scheduled inboxes (Tamil Thai Pongal, Sinhala and Tamil New Year, Christmas)
HOLIDAYS = frozenset({date(2025, 1, 14), date(2025, 4, 14), date(2025, 12, 25)})


def schedules() -> dict[str, Schedule]:
    """Business hours of 40 of the 50 inboxes (every tenth has none: calendar time) in their
    zones: South Asian offices Monday to Saturday 09:00-17:30, the others Monday to Friday
    09:00-13:00 and 14:00-18:00."""
    found = {}
    for i in range(50):
        if i % 10 == 9:
            continue
        zone = ZONES[i % 5]
        if zone in ("Asia/Colombo", "Asia/Kolkata"):
            spans = tuple(Span(d, 9 * 60, 17 * 60 + 30) for d in range(6))
        else:
            spans = tuple(Span(d, a * 60, b * 60) for d in range(5) for a, b in ((9, 13), (14, 18)))
        found[f"inbox-{i:02d}"] = Schedule(zone, spans, HOLIDAYS)
    return found


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


async def run(events: int, data: Path, repeats: int, agents: int = 200) -> dict[str, object]:
    shutil.rmtree(data, ignore_errors=True)
    backend = ChdbBackend(data, "hub_analytics")
    store = AnalyticsStore(backend)
    await store.ready()
    written = 0
    insert_s = 0.0
    began = time.perf_counter()
    for rows in generate(events):
        t = time.perf_counter()
        await store.write(rows)
        insert_s += time.perf_counter() - t
        written += len(rows)
        print(f"\r{written:,} rows written ({insert_s:.1f} s inserting)", end="", file=sys.stderr)
    presence = shifts(agents)
    t = time.perf_counter()
    await store.write(Rows(agent_presence=presence))
    insert_s += time.perf_counter() - t
    written += len(presence)
    total_s = time.perf_counter() - began
    print(file=sys.stderr)
    await backend.execute("OPTIMIZE TABLE hub_analytics.messages FINAL")
    await backend.execute("OPTIMIZE TABLE hub_analytics.conversation_events FINAL")
    await backend.execute("OPTIMIZE TABLE hub_analytics.agent_presence FINAL")
    counts = await reports.counts(backend)
    # the workers' rebuild of closed days; the last day stays unbuilt, like today, so every
    # year-long report also reads one day from the event tables
    t = time.perf_counter()
    await rollups.rebuild(backend, await rollups.pending(backend), before=date(2025, 12, 31))
    rebuild_s = time.perf_counter() - t
    print(f"rollups rebuilt in {rebuild_s:.1f} s", file=sys.stderr)
    scope = reports.Scope(
        "acc", datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "Asia/Colombo"
    )
    office = dataclasses.replace(scope, schedules=schedules())
    # the open time per inbox and day, made once (a report after a schedule change pays it)
    t = time.perf_counter()
    earliest = await reports._earliest(backend, "acc")
    await business_time.ensure(backend, "acc", schedules(), earliest)
    intervals_s = time.perf_counter() - t
    print(f"business hours set made in {intervals_s:.2f} s", file=sys.stderr)
    month = reports.Scope(
        "acc", datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC), "Asia/Colombo"
    )
    timed: dict[str, Callable[[], Awaitable[object]]] = {
        "volume (year)": lambda: reports.volume(backend, scope),
        "volume, Asia/Kathmandu (year)": lambda: reports.volume(
            backend, dataclasses.replace(scope, tz="Asia/Kathmandu")
        ),
        "first_response by agent (year)": lambda: reports.first_response(backend, scope, "agent"),
        "resolution by inbox (year)": lambda: reports.resolution(backend, scope, "inbox"),
        # handled, replies, resolutions and handling time from agent_days; online and busy
        # seconds from agent_presence (about 250,000 changes a year)
        "agents (year)": lambda: reports.agents(backend, scope),
        "agents (one month)": lambda: reports.agents(backend, month),
        "volume (one month)": lambda: reports.volume(backend, month),
        "first_response by inbox (one month)": lambda: reports.first_response(
            backend, month, "inbox"
        ),
        # from next_replies and the team on the pre-aggregated rows
        "next_response by inbox (one month)": lambda: reports.next_response(
            backend, month, "inbox"
        ),
        "first_response by team (one month)": lambda: reports.first_response(
            backend, month, "team"
        ),
        "next_response by inbox (year)": lambda: reports.next_response(backend, scope, "inbox"),
        "next_response by agent (year)": lambda: reports.next_response(backend, scope, "agent"),
        "first_response by team (year)": lambda: reports.first_response(backend, scope, "team"),
        "next_response by team (year)": lambda: reports.next_response(backend, scope, "team"),
        "resolution by team (year)": lambda: reports.resolution(backend, scope, "team"),
        "next_response of one team by inbox (year)": lambda: reports.next_response(
            backend, dataclasses.replace(scope, team_id="team-3"), "inbox"
        ),
        # business hours: open seconds from the inboxes' intervals (analytics.business_time)
        "first_response by agent, business hours (year)": lambda: reports.first_response(
            backend, office, "agent"
        ),
        "next_response by inbox, business hours (year)": lambda: reports.next_response(
            backend, office, "inbox"
        ),
        "resolution by inbox, business hours (year)": lambda: reports.resolution(
            backend, office, "inbox"
        ),
    }
    latency: dict[str, dict[str, float]] = {}
    for name, make in timed.items():
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            await make()
            samples.append(time.perf_counter() - t)
        latency[name] = {"p50_s": statistics.median(samples), "p95_s": _p95(samples)}
        print(f"{name}: p95 {latency[name]['p95_s']:.3f} s", file=sys.stderr)
    await store.close()
    disk = int(
        subprocess.run(
            ["du", "-sb", str(data)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    return {
        "message_events": counts["messages"],
        "conversation_events": counts["conversation_events"],
        "presence_events": counts["agent_presence"],
        "rows_per_s_insert": round(written / insert_s),
        "rows_per_s_with_generation": round(written / total_s),
        "rollup_rebuild_s_364_days": round(rebuild_s, 1),
        "business_hours_set_made_s": round(intervals_s, 2),
        "disk_bytes": disk,
        "disk_mb_per_million_rows": round(disk / 1e6 / (written / 1e6), 1),
        "report_latency": latency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="message events")
    parser.add_argument("--data", type=Path, default=Path(".artefacts/analytics/chdb"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--smoke", action="store_true", help="5,000 events, 20 agents, each report once"
    )
    args = parser.parse_args()
    if args.smoke:  # a check that it runs: its store goes when it ends, whatever --data says
        args.events, args.repeats = 5_000, 1
        with tempfile.TemporaryDirectory(prefix="hub-analytics-smoke-") as tmp:
            result = asyncio.run(run(args.events, Path(tmp) / "chdb", args.repeats, 20))
    else:
        result = asyncio.run(run(args.events, args.data, args.repeats, 200))
    out = Path(".artefacts/analytics")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
