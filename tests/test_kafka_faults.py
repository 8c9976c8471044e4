"""Fault tests of the scaled-out hub on a real Kafka broker, Redis and PostgreSQL: one gateway
process and two workers. SIGKILL a worker mid-stream, or restart the broker mid-stream: every
acknowledged message is stored once and reaches the agent socket (deduplicated by sequence) once.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from cryptography.fernet import Fernet

from tests.realtime.agents import Agent
from tests.support.api_channel import api_body, signed_headers
from tests.support.kafka_server import KafkaServer
from tests.support.processes import free_port, hub_cli_many, hub_env, start_hub, wait_healthy
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.kafka]


@dataclass
class Stack:
    gateway: str
    bases: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    inbox: dict[str, Any]
    db_dsn: str
    token: str


@pytest.fixture
async def stack(
    tmp_path: Path, db_dsn: str, redis_server: RedisServer, kafka_server: KafkaServer
) -> AsyncIterator[Stack]:
    common = {
        "DATABASE_URL": db_dsn,
        "REDIS_URL": redis_server.url,
        "KAFKA_BOOTSTRAP": kafka_server.bootstrap,
        "HUB_KAFKA_PREFIX": f"f-{uuid.uuid4().hex[:8]}.",
        "HUB_SECRET_KEY": Fernet.generate_key().decode(),
        "HUB_OUTBOX_POLL_MS": "100",
    }
    roles = {"gateway": "gateway", "worker-a": "worker", "worker-b": "worker"}
    ports = {name: free_port() for name in roles}
    envs = {
        name: hub_env(tmp_path / name, ports[name], HUB_ROLE=role, **common)
        for name, role in roles.items()
    }
    inbox, made = hub_cli_many(
        envs["gateway"],
        ["inbox", "create", "--channel", "api", "--name", "F"],
        ["token", "create", "--name", "faults"],
    )
    token = made["token"]
    logs = {name: tmp_path / f"{name}.log" for name in roles}
    procs = {name: start_hub(envs[name], logs[name]) for name in roles}
    async with aiohttp.ClientSession() as session:
        for name in roles:
            await wait_healthy(session, f"http://127.0.0.1:{ports[name]}", procs[name], logs[name])
    bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    yield Stack(bases["gateway"], bases, procs, logs, inbox, db_dsn, token)
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for name, proc in procs.items():
        if proc.wait(timeout=60) not in (0, -9):
            print(name, logs[name].read_text()[-3000:])


async def stream(stack: Stack, count: int, faults: dict[int, Callable[[], None]]) -> set[str]:
    """Send ``count`` webhooks at about 100/s, running ``faults[n]`` before the n-th; return the
    provider ids the gateway acknowledged (2xx)."""
    acked: set[str] = set()
    async with aiohttp.ClientSession() as session:
        for n in range(count):
            if n in faults:
                faults[n]()
            body = api_body(f"f-{n}", identifier=f"+9477{n % 50:07d}", text=f"भेजा {n}")
            headers = signed_headers(stack.inbox["signing_secret"], body)
            try:
                async with session.post(
                    f"{stack.gateway}/webhooks/api/{stack.inbox['id']}", data=body, headers=headers
                ) as response:
                    if response.status == 200:
                        acked.add(f"f-{n}")
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
    return acked


async def check_once(stack: Stack, agent: Agent, acked: set[str], within: float) -> None:
    def delivered() -> set[str]:
        seen: dict[int, str] = {}  # the client's dedupe: by sequence
        for e in agent.events:
            if e["type"] == "message.received":
                seen[e["seq"]] = e["event"]["payload"]["provider_message_id"]
        return set(seen.values())

    await agent.wait_until(lambda: acked <= delivered(), within=within)
    per_seq: dict[int, str] = {}
    for e in agent.events:
        if e["type"] == "message.received":
            per_seq[e["seq"]] = e["event"]["payload"]["provider_message_id"]
    ids = list(per_seq.values())
    assert len(ids) == len(set(ids)), "no message logged twice under two sequence numbers"
    conn = await asyncpg.connect(stack.db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT provider_message_id, count(*) AS n FROM messages GROUP BY 1"
        )
    finally:
        await conn.close()
    stored = {r["provider_message_id"]: r["n"] for r in rows}
    assert acked <= set(stored), "every acknowledged message is stored"
    assert all(n == 1 for n in stored.values()), "and stored once"


async def test_sigkill_of_a_worker_moves_its_partitions_and_loses_nothing(stack: Stack) -> None:
    agent = Agent()
    await agent.connect(stack.gateway, token=stack.token)
    try:
        acked = await stream(stack, 400, {150: stack.procs["worker-a"].kill})
        assert len(acked) == 400, "the gateway kept acknowledging while a worker died"
        # the dead member's partitions move once its Kafka session times out (10 s)
        await check_once(stack, agent, acked, within=60)
    finally:
        await agent.client.disconnect()


async def test_a_broker_restart_mid_stream_loses_nothing(
    stack: Stack, kafka_server: KafkaServer
) -> None:
    agent = Agent()
    await agent.connect(stack.gateway, token=stack.token)
    try:
        # the broker is down while messages 100-199 arrive
        acked = await stream(stack, 300, {100: kafka_server.stop, 200: kafka_server.start})
        assert len(acked) == 300, "ingest does not depend on the broker: the outbox holds events"
        await check_once(stack, agent, acked, within=90)
    finally:
        await agent.client.disconnect()

    async def worker_ready() -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{stack.bases['worker-b']}/readyz") as response,
        ):
            return response.status, (await response.json())["checks"]

    async def until(status: int, lag: int | None = None) -> dict[str, Any]:
        async with asyncio.timeout(30):
            while True:
                found, checks = await worker_ready()
                if found == status and lag in (None, checks.get("bus_lag")):
                    return checks
                await asyncio.sleep(0.2)

    checks = await until(200, lag=0)  # everything handled and committed
    assert checks["bus"] == "ok"
    kafka_server.stop()
    assert (await until(503))["bus"].startswith("unavailable"), "readiness reports the broker"
    kafka_server.start()
    await until(200)
