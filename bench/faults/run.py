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
  then reconnects with its ``last_seq`` and replays what it missed. Its messages carry an
  attachment link of 2,000 characters each, so the unread backlog outgrows the kernel's buffers
  after a few hundred messages.
- ``redis-restart``: two ``hub serve`` on one PostgreSQL and a ``redis-server``; Redis is stopped
  for ``--outage`` seconds and started empty.
- ``worker-kill``: one gateway and two workers (``HUB_ROLE``) on Kafka, Redis and PostgreSQL;
  SIGKILL a worker: its partitions move to the other once its Kafka session times out.
- ``kafka-restart``: the same three processes; the broker is stopped for ``--outage`` seconds:
  the outbox holds the events, ingest goes on, and everything flows when it is back.
- ``postgres-restart``: the same two processes on the embedded PostgreSQL run as a server; it is
  stopped for ``--outage`` seconds: gateways must answer 503 (the provider retries), never 500.
- ``scaled-gateway-kill``: two gateways and a worker on Kafka, Redis and PostgreSQL; SIGKILL of
  the first gateway, restarted after ``--outage`` seconds (the provider retries on either).
- ``media-store``: the embedded default; WhatsApp Cloud webhooks (Graph API: the local mock), each
  with a 128 KiB document the hub fetches and stores before it answers; for ``--outage`` seconds
  the hub process gets a 64 KiB file size limit (``RLIMIT_FSIZE``, ``SIGXFSZ`` ignored: writes
  fail with EFBIG, a disk that is full). The webhook must answer 503 and keep nothing; afterwards
  every message is stored once with its file, and no file or partial file is left over. Its rate
  is at most 200 msgs/s (each message is a file).

Agent replies (``--replies`` a second, default 20; in ``gateway-kill``, ``worker-kill`` and
``scaled-gateway-kill``): REST posts with an ``Idempotency-Key``, retried like a client, pushed
by the API inbox to the provider mock; each must be stored once and reach the mock exactly once.

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
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from cryptography.fernet import Fernet

from bench.faults.agents import SilentSocket, StreamAgent
from bench.faults.driver import Driver, padded_requests
from bench.faults.replies import Replier
from bench.faults.whatsapp_media import DOCUMENT, DocumentWebhooks, whatsapp_inbox
from bench.smoke import add_smoke_flag
from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres
from tests.support.graph_mock import GraphApi
from tests.support.kafka_server import KafkaServer
from tests.support.processes import free_port, hub_cli_many, hub_env, start_hub, wait_healthy
from tests.support.provider_mock import ApiEndpoint, ProviderMock
from tests.support.redis_server import RedisServer

#: the token the benchmark's hubs require for /metrics (HUB_METRICS_TOKEN)
METRICS_TOKEN = secrets.token_urlsafe(24)

SCENARIOS = (
    "gateway-kill",
    "slow-client",
    "redis-restart",
    "postgres-restart",
    "worker-kill",
    "kafka-restart",
    "scaled-gateway-kill",
    "media-store",
)
#: scenarios that also send agent replies and reconcile them at the provider mock
REPLY_SCENARIOS = frozenset({"gateway-kill", "worker-kill", "scaled-gateway-kill"})
MEDIA_MAX_RATE = 200.0
#: the length of each slow-client message's attachment link (the API channel takes 2,048): larger
#: events, yet a replay batch of 500 still fits the kernel's buffers of a socket that reads
SLOW_CLIENT_PADDING = 2_000
MEDIA_FSIZE_LIMIT = 64 * 1024
MEDIA_WARNING = "media store cannot take"


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
    caught_up_seconds: float = 0.0  # end of load -> every agent had every acknowledged message
    # end of load -> the journal had every message and the outbox was empty (every consumer
    # group, the AI's too, had taken every event: the slowest group sets it)
    settled_seconds: float = 0.0
    slow_cutoffs: int = 0
    # media-store
    media_without_file: int = 0  # stored messages whose attachment has no file
    media_files: int = 0  # complete files in the store
    orphan_files: int = 0  # files no message holds
    partial_files: int = 0
    store_warnings: int = 0  # "the media store cannot take a provider file" lines logged
    # agent replies
    replies_acked: int = 0
    replies_attempts: int = 0
    replies_non_2xx: dict[str, int] = dataclasses.field(default_factory=dict)
    replies_stored: int = 0
    replies_stored_twice: int = 0
    replies_lost: int = 0  # acknowledged but not stored
    replies_at_provider: int = 0  # distinct replies the provider mock received
    replies_provider_missing: int = 0
    replies_provider_twice: int = 0
    replies_interrupted: int = 0  # of the missing: taken for sending by a process then killed
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
            or self.media_without_file
            or self.orphan_files
            or self.partial_files
            or self.replies_stored_twice
            or self.replies_lost
            or self.replies_provider_missing > self.replies_interrupted
            or self.replies_provider_twice
        )


class Hubs:
    """The hub processes of a scenario, their webhook URL, agent tokens and a database DSN."""

    def __init__(
        self, work: Path, mode: str, processes: int, extra: dict[str, str], n_gateways: int = 1
    ) -> None:
        self.work = work
        self.mode = mode
        self.n_gateways = n_gateways
        #: in kafka mode the first ``n_gateways`` processes are gateways, the others workers
        self.roles = (
            ["gateway"] * n_gateways + ["worker"] * (processes - n_gateways)
            if mode == "kafka"
            else []
        )
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
        #: the inbox the provider delivers to (the API inbox, or WhatsApp in media-store)
        self.ingest_inbox = ""
        self.admin = ""
        self.tokens: list[str] = []

    async def setup(self, agents: int) -> None:
        common = {
            "HUB_METRICS_TOKEN": METRICS_TOKEN,  # the hubs' /metrics are closed, as in production
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
        migrate = [["migrate"]] if self.mode in ("scaled", "kafka") else []
        # the set-up commands in one process (each would start Python and the hub again)
        made = hub_cli_many(
            self.envs[0],
            *migrate,
            ["inbox", "create", "--channel", "api", "--name", "F"],
            *[["token", "create", "--name", f"a{i}", "--role", "agent"] for i in range(agents + 1)],
            ["token", "create", "--name", "admin", "--role", "administrator"],
        )
        self.inbox = made[len(migrate)]
        self.tokens = [m["token"] for m in made[len(migrate) + 1 : -1]]
        self.admin = made[-1]["token"]
        self.ingest_inbox = self.inbox["id"]
        # all at once: each waits mostly on its own start-up (imports, connections)
        await asyncio.gather(*(self.start(i) for i in range(len(self.ports))))
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
        return self.bases[: self.n_gateways] if self.mode == "kafka" else self.bases

    def urls(self, channel: str = "api") -> list[str]:
        return [f"{b}/webhooks/{channel}/{self.ingest_inbox}" for b in self.gateways]

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
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/metrics", headers=headers) as response,
    ):
        assert response.status == 200, f"/metrics answered {response.status}"
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


async def fault_media_store(hubs: Hubs, report: Report, outage: float) -> None:
    proc = hubs.procs[0]
    assert proc is not None
    soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
    progress(f"fault: the hub may write files of {MEDIA_FSIZE_LIMIT} bytes at most (disk full)")
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (MEDIA_FSIZE_LIMIT, hard))
    await asyncio.sleep(outage)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
    progress("the media store takes files again")


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
    "scaled-gateway-kill": ("kafka", 3, fault_gateway_kill),
    "media-store": ("embedded", 1, fault_media_store),
}
#: gateways in kafka mode (the other processes are workers)
GATEWAYS = {"scaled-gateway-kill": 2}


async def configure_replies(hubs: Hubs, mock: ProviderMock) -> None:
    """The API inbox pushes agent replies to the provider mock's customer endpoint."""
    async with (
        aiohttp.ClientSession() as session,
        session.patch(
            f"{hubs.gateways[0]}/api/v1/inboxes/{hubs.inbox['id']}",
            json={"settings": {"outbound_url": mock.url + ApiEndpoint.PATH}},
            headers={"Authorization": f"Bearer {hubs.admin}"},
        ) as response,
    ):
        if response.status != 200:
            raise RuntimeError(f"outbound_url not set: {response.status} {await response.text()}")


async def feed_conversations(hubs: Hubs, replier: Replier) -> None:
    """Replies go to conversations the load created (as an agent answers what came in)."""
    conn = await asyncpg.connect(hubs.dsn)
    try:
        while not replier.conversations:
            await asyncio.sleep(0.5)
            rows = await conn.fetch(
                "SELECT id FROM conversations WHERE inbox_id = $1 ORDER BY id LIMIT 50",
                hubs.inbox["id"],
            )
            replier.conversations = [r["id"] for r in rows]
    finally:
        await conn.close()


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
    replies: float = 20,
) -> Report:
    mode, processes, fault = FAULTS[scenario]
    media = scenario == "media-store"
    if media:
        rate = min(rate, MEDIA_MAX_RATE)
    report = Report(scenario, mode, rate, duration, agents)
    extra = {"HUB_REALTIME_SOCKET_BUFFER_KIB": "64"} if scenario == "slow-client" else {}
    mock = ProviderMock(GraphApi(), ApiEndpoint())
    await mock.start()
    # inherited by the hub processes: a file size limit then fails a write instead of killing
    xfsz = signal.signal(signal.SIGXFSZ, signal.SIG_IGN) if media else None
    async with workdir(keep) as work:
        hubs = Hubs(work, mode, processes, extra, GATEWAYS.get(scenario, 1))
        progress(f"{scenario}: starting {processes} hub process(es), {mode} mode, in {work}")
        try:
            await hubs.setup(agents)
        finally:
            if xfsz is not None:
                signal.signal(signal.SIGXFSZ, xfsz)
        make: Callable[[str], tuple[bytes, dict[str, str]]] | None = None
        if media:
            hubs.ingest_inbox = (await whatsapp_inbox(hubs.gateways[0], hubs.admin, mock))["id"]
            make = DocumentWebhooks(mock).make
        if scenario == "slow-client":
            # larger messages: the backlog outgrows the kernel's socket buffers (a few MB) after
            # hundreds of them rather than the thousands the hub then takes a minute to settle
            make = padded_requests(hubs.inbox["signing_secret"], SLOW_CLIENT_PADDING)
        replier: Replier | None = None
        if scenario in REPLY_SCENARIOS and replies > 0:
            await configure_replies(hubs, mock)
            replier = Replier(hubs.gateways, hubs.admin, replies)
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
            driver = Driver(
                hubs.urls("whatsapp_cloud" if media else "api"),
                hubs.inbox["signing_secret"],
                rate,
                make=make,
            )
            cut = asyncio.Event()
            watch = asyncio.create_task(watch_cutoffs(hubs.bases[0], cut)) if silent else None
            # the slow socket's backlog must outgrow the kernel's socket buffers (a few MB) before
            # the hub sees it: the load goes on (at most 30 s more) until it is cut
            load = asyncio.create_task(
                driver.run(duration, more=lambda: silent is not None and not cut.is_set())
            )
            replying = (
                asyncio.gather(replier.run(duration), feed_conversations(hubs, replier))
                if replier is not None
                else None
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
            if replying is not None:
                await replying
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
            if replier is not None:
                await reconcile_replies(hubs, replier, mock, report, settle)
            if media:
                await reconcile_media(hubs, report)
        finally:
            for agent in stream:
                await agent.stop()
            if silent is not None:
                silent.close()
            await hubs.teardown()
            await mock.close()
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
    inbox_id = hubs.ingest_inbox

    def has(agent: StreamAgent, messages: set[str]) -> bool:
        return all(agent.received[p] for p in messages)

    # the agents first: what they see does not wait for the slowest consumer group
    try:
        async with asyncio.timeout(settle):
            while not all(has(a, acked) for a in agents):
                await asyncio.sleep(0.2)
    except TimeoutError:
        report.notes.append("agents did not catch up within the settle time")
    report.caught_up_seconds = round(time.monotonic() - load_done, 2)
    progress(f"agents caught up {report.caught_up_seconds} s after the load")
    conn = await asyncpg.connect(hubs.dsn)
    try:
        async with asyncio.timeout(settle):
            while await conn.fetchval(
                """SELECT count(*) FROM messages m WHERE m.inbox_id = $1
                      AND m.direction = 'inbound' AND NOT EXISTS (
                       SELECT 1 FROM event_log e WHERE e.type = 'message.received'
                          AND e.event->'payload'->>'message_id' = m.id)""",
                inbox_id,
            ) or await conn.fetchval("SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.2)
        report.settled_seconds = round(time.monotonic() - load_done, 2)
        progress(f"journal and outbox settled {report.settled_seconds} s after the load")
        rows = await conn.fetch(
            """SELECT provider_message_id, count(*) AS n FROM messages
                WHERE inbox_id = $1 AND direction = 'inbound' GROUP BY 1""",
            inbox_id,
        )
        stored = {r["provider_message_id"]: r["n"] for r in rows}
        journal = await conn.fetch(
            """SELECT m.id, count(e.id) AS n FROM messages m LEFT JOIN event_log e
                   ON e.type = 'message.received' AND e.event->'payload'->>'message_id' = m.id
                WHERE m.inbox_id = $1 AND m.direction = 'inbound' GROUP BY 1""",
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

    everything = set(stored)  # and the stored ones that were never acknowledged
    try:
        async with asyncio.timeout(settle):
            while not all(has(a, everything) for a in agents):
                await asyncio.sleep(0.2)
    except TimeoutError:
        report.notes.append("agents did not get every stored message within the settle time")
    await asyncio.sleep(0.5)  # anything doubled arrives now
    report.delivered_min = min(sum(1 for p in stored if a.received[p]) for a in agents)
    report.agent_lost = sum(1 for a in agents for p in stored if not a.received[p])
    report.agent_twice = sum(1 for a in agents for n in a.received.values() if n > 1)
    report.dropped_by_seq = sum(a.dropped_by_seq for a in agents)
    report.reconnects = sum(a.reconnects for a in agents)
    report.reconnects_per_agent = [a.reconnects for a in agents]
    report.resyncs = sum(len(a.resyncs) for a in agents)


async def reconcile_replies(
    hubs: Hubs, replier: Replier, mock: ProviderMock, report: Report, settle: float
) -> None:
    """Each acknowledged reply stored once and received by the provider mock exactly once."""
    report.replies_acked = len(replier.acked)
    report.replies_attempts = replier.attempts
    report.replies_non_2xx = dict(replier.statuses)
    report.unexpected |= {f"reply {k}": v for k, v in replier.unexpected.items()}

    def at_provider() -> Counter[str]:
        return Counter(str(r.json().get("text")) for r in mock.of("api.outbound"))

    conn = await asyncpg.connect(hubs.dsn)
    try:
        stable = 0
        async with asyncio.timeout(settle):
            # until every reply is at the provider, or the only ones missing have been taken
            # for sending (and nothing else moved) for 3 s: sends a killed process interrupted
            while missing := set(replier.acked) - set(at_provider()):
                taken = await conn.fetchval(
                    """SELECT count(*) FROM messages WHERE direction = 'outbound'
                          AND content = ANY($1) AND status = 'queued'
                          AND delivery_started_at < now() - interval '3 seconds'""",
                    list(missing),
                )
                stable = stable + 1 if taken == len(missing) else 0
                if stable >= 5:
                    break
                await asyncio.sleep(0.2)
    except TimeoutError:
        report.notes.append("replies did not all reach the provider within the settle time")
    finally:
        await conn.close()
    await asyncio.sleep(1.0)  # a doubled send arrives now
    received = at_provider()
    by_id = Counter(str(r.json().get("message_id")) for r in mock.of("api.outbound"))
    conn = await asyncpg.connect(hubs.dsn)
    try:
        rows = await conn.fetch(
            """SELECT content, count(*) AS n FROM messages
                WHERE direction = 'outbound' AND content LIKE 'fault-reply-%' GROUP BY 1"""
        )
        never = sorted(set(replier.acked) - set(received))
        statuses = await conn.fetch(
            """SELECT status, delivery_started_at IS NOT NULL AS started, count(*) AS n
                 FROM messages WHERE direction = 'outbound' AND content = ANY($1) GROUP BY 1, 2""",
            never,
        )
    finally:
        await conn.close()
    if never:
        report.notes.append(
            f"replies never at the provider: {never[:5]}, by (status, send started): "
            + str({(r["status"], r["started"]): r["n"] for r in statuses})
        )
    # taken for sending (delivery_started_at) by a process that died before the send went out:
    # by design never sent again (a reply must not arrive twice); the sweep fails it later
    report.replies_interrupted = sum(
        r["n"] for r in statuses if r["started"] and r["status"] == "queued"
    )
    stored = {r["content"]: r["n"] for r in rows}
    report.replies_stored = len(stored)
    report.replies_stored_twice = sum(1 for n in stored.values() if n > 1)
    report.replies_lost = len(set(replier.acked) - set(stored))
    report.replies_at_provider = len(received)
    report.replies_provider_missing = len(set(replier.acked) - set(received))
    report.replies_provider_twice = sum(1 for n in received.values() if n > 1) + sum(
        1 for n in by_id.values() if n > 1
    )


async def reconcile_media(hubs: Hubs, report: Report) -> None:
    """Every stored message holds its file; the store holds nothing else, no partial file."""
    conn = await asyncpg.connect(hubs.dsn)
    try:
        report.media_without_file = await conn.fetchval(
            """SELECT count(*) FROM messages WHERE inbox_id = $1 AND direction = 'inbound'
                  AND (jsonb_array_length(attachments) <> 1
                       OR coalesce(attachments->0->>'url', '') = ''
                       OR (attachments->0->>'size')::bigint <> $2)""",
            hubs.ingest_inbox,
            len(DOCUMENT),
        )
        keys = {r["key"] for r in await conn.fetch("SELECT key FROM media")}
    finally:
        await conn.close()
    root = hubs.work / "data0" / "media"
    files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    complete = {p.name for p in files if not p.name.endswith(".partial")}
    report.partial_files = len(files) - len(complete)
    report.media_files = len(complete)
    report.orphan_files = len(complete - keys)
    if keys - complete:
        report.notes.append(f"{len(keys - complete)} media rows without their file")
        report.media_without_file += len(keys - complete)
    wrong = sum(1 for p in files if p.name in complete and p.stat().st_size != len(DOCUMENT))
    if wrong:
        report.notes.append(f"{wrong} stored files of the wrong size")
        report.media_without_file += wrong
    log = hubs.logs[0].read_text() if hubs.logs[0].exists() else ""
    report.store_warnings = log.count(MEDIA_WARNING)


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
        f"{report.caught_up_seconds} s after the load, every consumer group "
        f"{report.settled_seconds} s after; reconnects {report.reconnects_per_agent}, "
        f"deduped by seq {report.dropped_by_seq}, slow cutoffs {report.slow_cutoffs}"
        + (
            f"; replies acknowledged {report.replies_acked} (non-2xx {report.replies_non_2xx}), "
            f"stored {report.replies_stored} (twice {report.replies_stored_twice}, lost "
            f"{report.replies_lost}), at the provider {report.replies_at_provider} (missing "
            f"{report.replies_provider_missing} of which interrupted sends "
            f"{report.replies_interrupted}, twice {report.replies_provider_twice})"
            if report.replies_attempts
            else ""
        )
        + (
            f"; media files {report.media_files}, without file {report.media_without_file}, "
            f"orphan {report.orphan_files}, partial {report.partial_files}, store warnings "
            f"logged {report.store_warnings}"
            if report.scenario == "media-store"
            else ""
        )
        + (f"; notes: {report.notes}" if report.notes else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("scenario", choices=(*SCENARIOS, "all"))
    parser.add_argument("--rate", type=float, default=2000, help="new messages a second")
    parser.add_argument("--duration", type=float, default=20, help="seconds of load")
    parser.add_argument("--agents", type=int, default=4, help="agent sockets")
    parser.add_argument("--outage", type=float, default=2.0, help="seconds a fault lasts")
    parser.add_argument("--replies", type=float, default=20, help="agent replies a second")
    parser.add_argument("--json", type=Path, help="write the reports here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    if args.smoke:  # one embedded scenario, briefly: checks the runner, not the hub
        args.scenario = "gateway-kill" if args.scenario == "all" else args.scenario
        args.rate, args.duration, args.agents, args.replies = 100, 3, 1, 2
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    names = SCENARIOS if args.scenario == "all" else (args.scenario,)
    reports = []
    for name in names:
        report = asyncio.run(
            run_scenario(
                name,
                args.rate,
                args.duration,
                args.agents,
                args.outage,
                args.keep,
                replies=args.replies,
            )
        )
        print(summary(report), flush=True)
        reports.append(report)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in reports], indent=2))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
