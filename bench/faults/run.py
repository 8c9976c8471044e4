"""The fault runner: signed API-channel webhooks at a steady rate with agent sockets connected, one
fault per scenario, then a reconciliation of what was acknowledged, stored, journalled and
delivered.

    .venv/bin/python -m bench.faults.run gateway-kill          # 2,000 msgs/s, 20 s, 4 agents
    .venv/bin/python -m bench.faults.run all --rate 500 --duration 10
    .venv/bin/python -m bench.faults.run slow-client --json out.json

Scenarios:

- ``gateway-kill``: the embedded default (one ``hub serve``); SIGKILL it a third into the run,
  start it again; the provider retries what failed.
- ``slow-client``: the embedded default with one more socket that stops reading after its first
  batch: the hub must cut it (``hub_realtime_slow_cutoffs_total``) while the others keep up; it
  then reconnects with its ``last_seq`` and replays what it missed.
- ``redis-restart``: two ``hub serve`` on one PostgreSQL and a ``redis-server``; Redis is stopped
  for ``--outage`` seconds and started empty.
- ``worker-kill``: one gateway and two workers (``HUB_ROLE``) on Kafka, Redis and PostgreSQL;
  SIGKILL a worker: its partitions move to the other once its Kafka session times out.
- ``kafka-restart``: the same three processes; the broker is stopped for ``--outage`` seconds:
  the outbox holds the events, ingest goes on, and everything flows when it is back.
- ``postgres-restart``: the same two processes on the embedded PostgreSQL run as a server; it is
  stopped for ``--outage`` seconds: gateways must answer 503 (the provider retries), never 500.

The reconciliation (every scenario): every provider message that got a 2xx is stored exactly once
(SQL); the journal consumer logged each ``message.received`` once (``event_log``) and the realtime
log once (``realtime_events``); every stored message reached every agent socket exactly once after
dedupe by ``seq``; a re-delivery of 50 acknowledged messages answers ``duplicate``. Any non-2xx
other than a fault's 502/503/504 or a refused connection is reported as unexpected. Exit status 1
on any loss, duplicate or unexpected answer.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from cryptography.fernet import Fernet

from bench.faults.agents import SilentSocket, StreamAgent
from bench.faults.driver import Driver
from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres
from tests.support.kafka_server import KafkaServer
from tests.support.processes import free_port, hub_cli, hub_env, start_hub, wait_healthy
from tests.support.redis_server import RedisServer

SCENARIOS = (
    "gateway-kill",
    "slow-client",
    "redis-restart",
    "postgres-restart",
    "worker-kill",
    "kafka-restart",
)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Report:
    scenario: str
    mode: str
    rate: float
    duration: float
    agents: int
    generated: int = 0
    achieved_rate: float = 0.0  # new messages a second the driver generated
    load_seconds: float = 0.0  # load start -> the last message acknowledged
    acked_rate: float = 0.0  # acknowledged / load_seconds: what the hub took in
    attempts: int = 0
    acknowledged: int = 0
    stored: int = 0
    stored_twice: int = 0
    lost: int = 0  # acknowledged but not stored
    journal_missing: int = 0
    journal_twice: int = 0
    realtime_twice: int = 0
    delivered_min: int = 0  # the fewest stored messages any agent received
    agent_lost: int = 0  # (agent, message) pairs stored but never received
    agent_twice: int = 0  # (agent, message) pairs received more than once after dedupe
    dropped_by_seq: int = 0
    reconnects: int = 0
    reconnects_per_agent: list[int] = dataclasses.field(default_factory=list)
    resyncs: int = 0
    redelivered_duplicate: int = 0
    non_2xx: dict[str, int] = dataclasses.field(default_factory=dict)
    unexpected: dict[str, int] = dataclasses.field(default_factory=dict)
    fault_seconds: float = 0.0
    recover_seconds: float = 0.0  # fault injected -> the provider's last failed delivery
    caught_up_seconds: float = 0.0  # end of load -> every agent had every stored message
    slow_cutoffs: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.stored_twice
            or self.journal_missing
            or self.journal_twice
            or self.realtime_twice
            or self.agent_lost
            or self.agent_twice
            or self.unexpected
            or self.stored != self.acknowledged
        )


class Hubs:
    """The hub processes of a scenario, their webhook URL, agent tokens and a database DSN."""

    def __init__(self, work: Path, mode: str, processes: int, extra: dict[str, str]) -> None:
        self.work = work
        self.mode = mode
        #: in kafka mode process 0 is the gateway and the others are workers
        self.roles = ["gateway"] + ["worker"] * (processes - 1) if mode == "kafka" else []
        self.kafka: KafkaServer | None = None
        self.ports = [free_port() for _ in range(processes)]
        self.bases = [f"http://127.0.0.1:{p}" for p in self.ports]
        self.logs = [work / f"hub{i}.log" for i in range(processes)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * processes
        self.redis: RedisServer | None = None
        self.pg_dir = work / "pg"
        self.dsn = ""
        self.extra = extra
        self.envs: list[dict[str, str]] = []
        self.inbox: dict[str, Any] = {}
        self.tokens: list[str] = []

    async def setup(self, agents: int) -> None:
        common = {
            "HUB_REALTIME_REPLAY_EVENTS": "10000000",
            "HUB_OUTBOX_POLL_MS": "100",
            **self.extra,
        }
        if self.mode in ("scaled", "kafka"):
            self.redis = RedisServer(self.work / "redis")
            self.redis.start()
            self.dsn = await start_embedded_postgres(self.pg_dir)
            common |= {
                "DATABASE_URL": self.dsn,
                "REDIS_URL": self.redis.url,
                "HUB_SECRET_KEY": Fernet.generate_key().decode(),
            }
        if self.mode == "kafka":
            self.kafka = KafkaServer(self.work / "kafka")
            self.kafka.start()
            common |= {"KAFKA_BOOTSTRAP": self.kafka.bootstrap, "HUB_KAFKA_PREFIX": "faults."}
        self.envs = [
            hub_env(self.work / f"data{i}", port, **common) for i, port in enumerate(self.ports)
        ]
        for env, role in zip(self.envs, self.roles, strict=False):
            env["HUB_ROLE"] = role
        if self.mode in ("scaled", "kafka"):
            subprocess.run(
                [sys.executable, "-m", "hub.cli", "migrate"],
                env=self.envs[0],
                check=True,
                capture_output=True,
            )
        self.inbox = hub_cli(self.envs[0], "inbox", "create", "--channel", "api", "--name", "F")
        self.tokens = [
            hub_cli(self.envs[0], "token", "create", "--name", f"a{i}", "--role", "agent")["token"]
            for i in range(agents + 1)
        ]
        for i in range(len(self.ports)):
            await self.start(i)
        if self.mode == "embedded":
            self.dsn = await start_embedded_postgres(self.work / "data0")

    async def start(self, i: int) -> None:
        proc = start_hub(self.envs[i], self.logs[i])
        self.procs[i] = proc
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            await wait_healthy(session, self.bases[i], proc, self.logs[i])

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    @property
    def gateways(self) -> list[str]:
        return self.bases[:1] if self.mode == "kafka" else self.bases

    @property
    def urls(self) -> list[str]:
        return [f"{b}/webhooks/api/{self.inbox['id']}" for b in self.gateways]

    async def teardown(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.redis is not None:
            self.redis.stop()
        if self.kafka is not None:
            self.kafka.stop()
        stop_embedded_postgres(self.work / "data0" if self.mode == "embedded" else self.pg_dir)


async def metric(base: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def watch_cutoffs(base: str, cut: asyncio.Event) -> None:
    while not cut.is_set():
        await asyncio.sleep(0.5)
        try:
            if await metric(base, "hub_realtime_slow_cutoffs_total") >= 1:
                cut.set()
        except aiohttp.ClientError:
            pass


async def fault_gateway_kill(hubs: Hubs, report: Report, outage: float) -> None:
    progress("fault: SIGKILL hub serve")
    hubs.kill(0)
    await asyncio.sleep(outage)
    await hubs.start(0)
    progress("hub serve restarted")


async def fault_redis_restart(hubs: Hubs, report: Report, outage: float) -> None:
    assert hubs.redis is not None
    progress("fault: redis-server stopped")
    hubs.redis.stop()
    await asyncio.sleep(outage)
    hubs.redis.start()
    progress("redis-server started (empty)")


async def fault_postgres_restart(hubs: Hubs, report: Report, outage: float) -> None:
    progress("fault: PostgreSQL stopped")
    await asyncio.to_thread(stop_embedded_postgres, hubs.pg_dir)
    await asyncio.sleep(outage)
    dsn = await start_embedded_postgres(hubs.pg_dir)
    if dsn != hubs.dsn:
        report.notes.append(f"PostgreSQL came back on another address: {dsn}")
    progress("PostgreSQL started")


async def fault_worker_kill(hubs: Hubs, report: Report, outage: float) -> None:
    progress("fault: SIGKILL a worker (its partitions move once its session times out)")
    hubs.kill(1)


async def fault_kafka_restart(hubs: Hubs, report: Report, outage: float) -> None:
    assert hubs.kafka is not None
    progress("fault: Kafka broker stopped")
    await asyncio.to_thread(hubs.kafka.stop)
    await asyncio.sleep(outage)
    await asyncio.to_thread(hubs.kafka.start)
    progress("Kafka broker started")


FAULTS: dict[str, tuple[str, int, Callable[[Hubs, Report, float], Any] | None]] = {
    "gateway-kill": ("embedded", 1, fault_gateway_kill),
    "slow-client": ("embedded", 1, None),
    "redis-restart": ("scaled", 2, fault_redis_restart),
    "postgres-restart": ("scaled", 2, fault_postgres_restart),
    "worker-kill": ("kafka", 3, fault_worker_kill),
    "kafka-restart": ("kafka", 3, fault_kafka_restart),
}


@asynccontextmanager
async def workdir(keep: bool) -> AsyncIterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hub-faults-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


async def run_scenario(
    scenario: str,
    rate: float = 2000,
    duration: float = 20,
    agents: int = 4,
    outage: float = 2.0,
    keep: bool = False,
    settle: float = 60,
) -> Report:
    mode, processes, fault = FAULTS[scenario]
    report = Report(scenario, mode, rate, duration, agents)
    extra = {"HUB_REALTIME_SOCKET_BUFFER_KIB": "64"} if scenario == "slow-client" else {}
    async with workdir(keep) as work:
        hubs = Hubs(work, mode, processes, extra)
        progress(f"{scenario}: starting {processes} hub process(es), {mode} mode, in {work}")
        await hubs.setup(agents)
        stream = [
            StreamAgent(hubs.gateways[i % len(hubs.gateways)], hubs.tokens[i], f"agent{i}")
            for i in range(agents)
        ]
        silent: SilentSocket | None = None
        try:
            for agent in stream:
                await agent.start()
            if scenario == "slow-client":
                silent = SilentSocket(hubs.bases[0], hubs.tokens[agents])
                await silent.open()
            progress(f"{agents} agent sockets connected; load {rate:g} msgs/s for {duration:g} s")
            driver = Driver(hubs.urls, hubs.inbox["signing_secret"], rate)
            cut = asyncio.Event()
            watch = asyncio.create_task(watch_cutoffs(hubs.bases[0], cut)) if silent else None
            # the slow socket's backlog must outgrow the kernel's socket buffers (a few MB) before
            # the hub sees it: the load goes on (at most 30 s more) until it is cut
            load = asyncio.create_task(
                driver.run(duration, more=lambda: silent is not None and not cut.is_set())
            )
            started = time.monotonic()
            fault_at = 0.0
            slow_seq = 0
            if silent is not None:
                first = await asyncio.wait_for(silent.read_until_events(), 30)
                slow_seq = max(int(item["seq"]) for item in first)
                progress(f"slow socket read one batch (to seq {slow_seq}) and stops reading")
            await asyncio.sleep(max(0.0, duration / 3 - (time.monotonic() - started)))
            if fault is not None:
                fault_at = time.monotonic()
                await fault(hubs, report, outage)
                report.fault_seconds = round(time.monotonic() - fault_at, 2)
            while not load.done():
                await asyncio.sleep(1)
                progress(
                    f"generated {driver.generated}, acknowledged {len(driver.acked)}, "
                    f"non-2xx {dict(driver.statuses)}"
                )
            await load
            load_done = time.monotonic()
            report.load_seconds = round(driver.last_ack_at - started, 2)
            report.achieved_rate = round(driver.generated / driver.generated_for, 1)
            report.acked_rate = round(len(driver.acked) / report.load_seconds, 1)
            if fault_at and driver.last_fail_at > fault_at:
                report.recover_seconds = round(driver.last_fail_at - fault_at, 2)
            # a provider delivering again what already succeeded
            again = sorted(driver.acked)[:50]
            before = driver.duplicate_answers
            await driver.resend(again)
            report.redelivered_duplicate = driver.duplicate_answers - before
            if report.redelivered_duplicate != len(again):
                report.notes.append(
                    f"re-delivery: {report.redelivered_duplicate} of {len(again)} duplicate"
                )

            if watch is not None:
                watch.cancel()
            if silent is not None:
                report.slow_cutoffs = int(
                    await metric(hubs.bases[0], "hub_realtime_slow_cutoffs_total")
                )
                silent.close()
                progress(f"slow socket cut {report.slow_cutoffs} time(s); it reconnects")
                replay = StreamAgent(hubs.bases[0], hubs.tokens[agents], "slow")
                for batch in silent.batches:
                    replay.take(batch)
                assert replay.last_seq == slow_seq
                await replay.start()
                stream.append(replay)

            await reconcile(hubs, driver, stream, report, settle, load_done)
        finally:
            for agent in stream:
                await agent.stop()
            if silent is not None:
                silent.close()
            await hubs.teardown()
        if scenario == "slow-client" and report.slow_cutoffs < 1:
            report.notes.append("the slow socket was never cut")
            report.unexpected["slow_not_cut"] = 1
        for i, log in enumerate(hubs.logs):
            text = log.read_text() if log.exists() else ""
            crashes = [
                line
                for line in text.splitlines()
                if line.startswith("Traceback") or ('"level":"error"' in line and '"exc"' in line)
            ]
            if crashes:
                report.notes.append(f"hub{i}.log: {len(crashes)} error(s) with a traceback")
    return report


async def reconcile(
    hubs: Hubs,
    driver: Driver,
    agents: list[StreamAgent],
    report: Report,
    settle: float,
    load_done: float,
) -> None:
    progress("reconciling")
    acked = set(driver.acked)
    report.generated = driver.generated
    report.attempts = driver.attempts
    report.acknowledged = len(acked)
    report.non_2xx = dict(driver.statuses)
    report.unexpected = driver.unexpected
    inbox_id = hubs.inbox["id"]
    conn = await asyncpg.connect(hubs.dsn)
    try:
        async with asyncio.timeout(settle):
            while await conn.fetchval(
                """SELECT count(*) FROM messages m WHERE m.inbox_id = $1 AND NOT EXISTS (
                       SELECT 1 FROM event_log e WHERE e.type = 'message.received'
                          AND e.event->'payload'->>'message_id' = m.id)""",
                inbox_id,
            ) or await conn.fetchval("SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.2)
        rows = await conn.fetch(
            """SELECT provider_message_id, count(*) AS n FROM messages WHERE inbox_id = $1
               GROUP BY 1""",
            inbox_id,
        )
        stored = {r["provider_message_id"]: r["n"] for r in rows}
        journal = await conn.fetch(
            """SELECT m.id, count(e.id) AS n FROM messages m LEFT JOIN event_log e
                   ON e.type = 'message.received' AND e.event->'payload'->>'message_id' = m.id
                WHERE m.inbox_id = $1 GROUP BY 1""",
            inbox_id,
        )
        realtime_twice = await conn.fetchval(
            """SELECT count(*) FROM (SELECT event->'payload'->>'message_id' FROM realtime_events
                WHERE type = 'message.received' GROUP BY 1 HAVING count(*) > 1) t"""
        )
    finally:
        await conn.close()
    report.stored = len(stored)
    report.stored_twice = sum(1 for n in stored.values() if n > 1)
    report.lost = len(acked - set(stored))
    report.journal_missing = sum(1 for r in journal if r["n"] == 0)
    report.journal_twice = sum(1 for r in journal if r["n"] > 1)
    report.realtime_twice = realtime_twice
    if set(stored) - acked:
        report.notes.append(f"{len(set(stored) - acked)} stored but never acknowledged")

    def all_in(agent: StreamAgent) -> bool:
        return all(agent.received[p] for p in stored)

    try:
        async with asyncio.timeout(settle):
            while not all(all_in(a) for a in agents):
                await asyncio.sleep(0.2)
    except TimeoutError:
        report.notes.append("agents did not catch up within the settle time")
    report.caught_up_seconds = round(time.monotonic() - load_done, 2)
    await asyncio.sleep(0.5)  # anything doubled arrives now
    report.delivered_min = min(sum(1 for p in stored if a.received[p]) for a in agents)
    report.agent_lost = sum(1 for a in agents for p in stored if not a.received[p])
    report.agent_twice = sum(1 for a in agents for n in a.received.values() if n > 1)
    report.dropped_by_seq = sum(a.dropped_by_seq for a in agents)
    report.reconnects = sum(a.reconnects for a in agents)
    report.reconnects_per_agent = [a.reconnects for a in agents]
    report.resyncs = sum(len(a.resyncs) for a in agents)


def summary(report: Report) -> str:
    verdict = "OK" if report.ok else "FAILED"
    return (
        f"{report.scenario} [{verdict}] {report.mode}, {report.rate:g} msgs/s asked "
        f"({report.achieved_rate:g} generated/s, {report.acked_rate:g} acknowledged/s over "
        f"{report.load_seconds:g} s), {report.duration:g} s, {report.agents} agents: "
        f"sent {report.generated}, acknowledged {report.acknowledged}, stored {report.stored}, "
        f"delivered to every agent >= {report.delivered_min}; lost {report.lost}, "
        f"stored twice {report.stored_twice}, agent lost {report.agent_lost}, "
        f"agent twice {report.agent_twice}; journal missing/twice {report.journal_missing}/"
        f"{report.journal_twice}; non-2xx {report.non_2xx}; fault {report.fault_seconds} s, "
        f"provider failures until +{report.recover_seconds} s, agents caught up "
        f"{report.caught_up_seconds} s after the load; reconnects {report.reconnects_per_agent}, "
        f"deduped by seq {report.dropped_by_seq}, slow cutoffs {report.slow_cutoffs}"
        + (f"; notes: {report.notes}" if report.notes else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("scenario", choices=(*SCENARIOS, "all"))
    parser.add_argument("--rate", type=float, default=2000, help="new messages a second")
    parser.add_argument("--duration", type=float, default=20, help="seconds of load")
    parser.add_argument("--agents", type=int, default=4, help="agent sockets")
    parser.add_argument("--outage", type=float, default=2.0, help="seconds a fault lasts")
    parser.add_argument("--json", type=Path, help="write the reports here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    names = SCENARIOS if args.scenario == "all" else (args.scenario,)
    reports = []
    for name in names:
        report = asyncio.run(
            run_scenario(name, args.rate, args.duration, args.agents, args.outage, args.keep)
        )
        print(summary(report), flush=True)
        reports.append(report)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in reports], indent=2))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
