"""Two real `hub serve` processes on one PostgreSQL and one real redis-server (and on the
in-process bus or a real Kafka broker): an event produced in
either reaches agents connected to both, presence is shared, and restarting Redis mid-stream (it
comes back empty) loses nothing."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from cryptography.fernet import Fernet

from tests.realtime.agents import Agent
from tests.support.api_channel import api_body, signed_headers
from tests.support.kafka_server import KafkaServer
from tests.support.processes import free_port, hub_cli_many, hub_env, start_hub, wait_healthy
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def has_all(agent: Agent, count: int) -> bool:
    return len(received(agent)) == count


def received(agent: Agent) -> list[str]:
    return [
        e["event"]["payload"]["provider_message_id"]
        for e in agent.events
        if e["type"] == "message.received"
    ]


@pytest.mark.parametrize("bus", ["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
async def test_two_processes_share_events_and_presence_and_survive_a_redis_restart(
    tmp_path: Path, db_dsn: str, redis_server: RedisServer, bus: str, request: pytest.FixtureRequest
) -> None:
    """With the Kafka bus the two processes also share the consumer groups: each logs the events
    of its partitions, and the Redis wake-ups bring them to the agents on both."""
    common = {
        "DATABASE_URL": db_dsn,
        "REDIS_URL": redis_server.url,
        "HUB_SECRET_KEY": Fernet.generate_key().decode(),
        "HUB_OUTBOX_POLL_MS": "100",
    }
    if bus == "kafka":
        kafka: KafkaServer = request.getfixturevalue("kafka_server")
        common["KAFKA_BOOTSTRAP"] = kafka.bootstrap
        common["HUB_KAFKA_PREFIX"] = f"mp-{uuid.uuid4().hex[:8]}."
    ports = [free_port(), free_port()]
    envs = [hub_env(tmp_path / f"data{i}", port, **common) for i, port in enumerate(ports)]
    inbox, token_a, token_b = hub_cli_many(
        envs[0],
        ["inbox", "create", "--channel", "api", "--name", "Shop"],
        ["token", "create", "--name", "ann", "--role", "agent"],
        ["token", "create", "--name", "bob", "--role", "agent"],
    )
    logs = [tmp_path / f"hub{i}.log" for i in range(2)]
    procs = [start_hub(env, log) for env, log in zip(envs, logs, strict=True)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    ann, bob = Agent(), Agent()
    try:
        async with aiohttp.ClientSession() as session:
            for base, proc, log in zip(bases, procs, logs, strict=True):
                await wait_healthy(session, base, proc, log)

            sent: list[str] = []

            async def post(n: int) -> None:
                body = api_body(f"mp-{n}", identifier=f"+9477000{n:04d}", text=f"නමස්තේ {n}")
                url = f"{bases[n % 2]}/webhooks/api/{inbox['id']}"  # alternate the processes
                headers = signed_headers(inbox["signing_secret"], body)
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 200, await response.text()
                sent.append(f"mp-{n}")

            await ann.connect(bases[0], token=token_a["token"])
            await bob.connect(bases[1], token=token_b["token"])
            # presence crosses processes: Ann (process A) hears Bob (process B) and vice versa
            await ann.wait_until(lambda: ann.presence.get(token_b["id"]) == "online")
            assert bob.presence.get(token_a["id"]) == "online"
            await bob.client.call("presence", {"status": "busy"}, namespace="/agent")
            await ann.wait_until(lambda: ann.presence.get(token_b["id"]) == "busy")

            for n in range(10):
                await post(n)
            await ann.wait_until(lambda: len(received(ann)) == 10)
            await bob.wait_until(lambda: len(received(bob)) == 10)

            redis_server.stop()  # mid-stream; it comes back empty
            for n in range(10, 20):
                await post(n)
            redis_server.start()
            for n in range(20, 30):
                await post(n)
            for agent in (ann, bob):
                await agent.wait_until(partial(has_all, agent, 30), within=30)
                assert sorted(received(agent)) == sorted(sent), "every message, once"
                seqs = agent.seqs()
                assert seqs == sorted(set(seqs)), "in sequence order, nothing doubled"
            # later events (conversation, contact) may still be on their way to one of them
            await ann.wait_until(lambda: ann.seqs()[-1] == bob.seqs()[-1])
            assert ann.seqs() == bob.seqs(), "both processes delivered the same stream"

            # presence was written back into the restarted Redis: a new socket on A sees Bob busy
            async def sees_bob_busy() -> bool:
                probe = Agent()
                await probe.connect(bases[0], token=token_a["token"])
                busy = probe.presence.get(token_b["id"]) == "busy"
                await probe.client.disconnect()
                return busy

            for _ in range(50):
                if await sees_bob_busy():
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("Bob's busy status did not come back after the restart")

            # broadcasts between the processes (Redis pub/sub) come back once both resubscribed,
            # which python-socketio does with a growing back-off; one sent before that is lost,
            # so Bob says "online" until Ann hears it, then leaves
            for _ in range(60):
                await bob.client.call("presence", {"status": "online"}, namespace="/agent")
                try:
                    await ann.wait_until(
                        lambda: ann.presence.get(token_b["id"]) == "online", within=1
                    )
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError("broadcasts between the processes did not come back")
            await bob.client.disconnect()
            await ann.wait_until(lambda: ann.presence.get(token_b["id"]) == "offline", within=30)
    finally:
        for agent in (ann, bob):
            if agent.client.connected:
                await agent.client.disconnect()
        for proc in procs:
            proc.terminate()
        for proc, log in zip(procs, logs, strict=True):
            if proc.wait(timeout=30) != 0:
                print(log.read_text()[-3000:])
