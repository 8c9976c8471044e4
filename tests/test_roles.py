"""Process roles: a gateway process takes the webhook and holds the agent socket, a worker process
runs the consumers and the relay; the event goes gateway -> PostgreSQL outbox -> worker -> replay
log -> Redis wake-up -> the gateway's socket."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from cryptography.fernet import Fernet

from tests.realtime.agents import Agent
from tests.support.api_channel import api_body, signed_headers
from tests.support.processes import free_port, hub_cli_many, hub_env, start_hub, wait_healthy
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


async def test_a_gateway_and_a_worker_split_the_work(
    tmp_path: Path, db_dsn: str, redis_server: RedisServer
) -> None:
    common = {
        "DATABASE_URL": db_dsn,
        "REDIS_URL": redis_server.url,
        "HUB_SECRET_KEY": Fernet.generate_key().decode(),
    }
    ports = {"gateway": free_port(), "worker": free_port()}
    envs = {
        role: hub_env(tmp_path / role, port, HUB_ROLE=role, **common)
        for role, port in ports.items()
    }
    inbox, made = hub_cli_many(
        envs["gateway"],
        ["inbox", "create", "--channel", "api", "--name", "S"],
        ["token", "create", "--name", "roles"],
    )
    token = made["token"]
    logs = {role: tmp_path / f"{role}.log" for role in ports}
    procs = {role: start_hub(envs[role], logs[role]) for role in ports}
    base = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
    agent = Agent()
    try:
        async with aiohttp.ClientSession() as session:
            for role in ports:
                await wait_healthy(session, base[role], procs[role], logs[role])
                async with session.get(f"{base[role]}/readyz") as response:
                    checks = (await response.json())["checks"]
                    assert checks["role"] == role
                    assert ("bus" in checks) == (role == "worker")
            await agent.connect(base["gateway"], token=token)
            body = api_body("role-1", text="ආයුබෝවන්")
            headers = signed_headers(inbox["signing_secret"], body)
            url = f"/webhooks/api/{inbox['id']}"
            async with session.post(base["worker"] + url, data=body, headers=headers) as r:
                assert r.status == 404, "workers take no traffic"
            async with session.post(base["gateway"] + url, data=body, headers=headers) as r:
                assert r.status == 200
            await agent.wait_until(
                lambda: any(e["type"] == "message.received" for e in agent.events), within=20
            )
    finally:
        if agent.client.connected:
            await agent.client.disconnect()
        for proc in procs.values():
            proc.terminate()
        for role, proc in procs.items():
            if proc.wait(timeout=30) != 0:
                print(logs[role].read_text()[-3000:])
