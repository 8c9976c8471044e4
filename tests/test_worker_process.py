"""``HUB_WORKER_PROCESSES=1`` on the embedded default, as real processes: ``hub serve`` runs the
gateway and starts the worker role as its child on the embedded PostgreSQL it started itself; a
signed webhook goes gateway -> outbox -> the child's relay and replay log -> NOTIFY -> the
gateway's agent socket; the child owns chDB and answers the gateway's reports; a child that dies
is started again; none outlives its parent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from hub.store.embedded import stop_embedded_postgres
from tests.realtime.agents import Agent
from tests.support.api_channel import api_body, signed_headers
from tests.support.processes import free_port, hub_cli_many, hub_env, start_hub, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def child_of(session: aiohttp.ClientSession, base: str, restarts: int = 0) -> int:
    """The worker child's pid once the parent's ``/readyz`` reports it ready."""
    async with asyncio.timeout(60):
        while True:
            async with session.get(f"{base}/readyz") as response:
                checks: dict[str, Any] = (await response.json())["checks"]
            child = checks.get("worker_process", {})
            if child.get("state") == "ready" and child["restarts"] == restarts:
                assert checks["role"] == "gateway"
                assert child["outbox_relay"] == "active", "the child publishes the outbox"
                pid: int = child["pid"]
                return pid
            await asyncio.sleep(0.1)


async def unready_while_the_child_is_away(session: aiohttp.ClientSession, base: str) -> None:
    """The gateway answers 503 on ``/readyz`` until its worker child is back (it is started again
    after a pause of a second): the events flow only through the child."""
    async with asyncio.timeout(30):
        while True:
            async with session.get(f"{base}/readyz") as response:
                body = await response.json()
            if response.status == 503:
                assert body["ready"] is False
                assert body["checks"]["worker_process"]["state"] != "ready"
                return
            await asyncio.sleep(0.05)


async def gone(pid: int, within: float = 20) -> bool:
    async with asyncio.timeout(within):
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            await asyncio.sleep(0.05)
    return True


async def received(agent: Agent, text: str) -> None:
    def seen() -> bool:
        return any(
            e["type"] == "message.received" and e["event"]["payload"]["content"] == text
            for e in agent.events
        )

    await agent.wait_until(seen, within=30)


async def inbound_counted(session: aiohttp.ClientSession, base: str, token: str, n: int) -> None:
    """The gateway's volume report (answered from the worker child's chDB) counts ``n``."""
    today = datetime.now(UTC).date()
    params = {"since": str(today - timedelta(days=1)), "until": str(today + timedelta(days=1))}
    headers = {"Authorization": f"Bearer {token}"}
    async with asyncio.timeout(30):
        while True:
            async with session.get(
                f"{base}/api/v1/reports/volume", params=params, headers=headers
            ) as response:
                body = await response.json()
            if response.status == 200 and body["totals"]["messages_inbound"] == n:
                return
            assert response.status in (200, 503), body  # 503: the child is (re)starting
            await asyncio.sleep(0.2)


async def worker_metrics_in_the_gateways(session: aiohttp.ClientSession, base: str) -> None:
    """The gateway's ``/metrics`` has the child's (its bus, relay and consumers), labelled, in
    the gateway's families: each family once, as the exposition format wants."""
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a family twice"
    samples = {f.name: f.samples for f in families}
    journal = [s for s in samples["hub_bus_records"] if s.labels.get("group") == "journal"]
    assert journal and all(s.labels["process"] == "worker" for s in journal), journal
    assert any(s.labels == {"process": "worker"} for s in samples["hub_outbox_backlog"])
    requests = [
        s for s in samples["hub_http_request_duration_seconds"] if "process" not in s.labels
    ]
    assert requests, "the gateway's own samples keep their labels"


@pytest.fixture
def split_env(tmp_path: Path) -> Any:
    env = hub_env(
        tmp_path / "data",
        free_port(),
        HUB_WORKER_PROCESSES="1",
        HUB_SECRET_KEY=Fernet.generate_key().decode(),
    )
    yield env
    stop_embedded_postgres(tmp_path / "data")


async def test_a_webhook_reaches_the_agent_through_the_worker_child_which_stops_with_the_parent(
    tmp_path: Path, split_env: dict[str, str]
) -> None:
    inbox, made = hub_cli_many(
        split_env,
        ["inbox", "create", "--channel", "api", "--name", "Split"],
        ["token", "create", "--name", "split"],
    )
    token = made["token"]
    log = tmp_path / "hub.log"
    proc = start_hub(split_env, log)
    base = f"http://127.0.0.1:{split_env['HUB_PORT']}"
    agent = Agent()
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, proc, log)
            child = await child_of(session, base)
            async with session.get(f"{base}/readyz") as response:
                checks = (await response.json())["checks"]
            assert checks["analytics"] == "chdb (in the worker process)"
            # the child's parts are on the gateway's /readyz too (the archive runs in the child)
            assert checks["archive"] == "postgresql" and checks["archive_lag"] == 0
            assert psutil.Process(child).ppid() == proc.pid
            # a terminal's Ctrl-C (SIGINT to the foreground group) reaches the parent only
            assert os.getpgid(child) != os.getpgid(proc.pid)
            handles = tmp_path / "data" / "postgres" / ".handle_pids.json"
            assert child not in json.loads(handles.read_text()), "the child uses the parent's"
            await agent.connect(base, token=token)
            url = f"{base}/webhooks/api/{inbox['id']}"
            for n, text in enumerate(["ආයුබෝවන්", "after the child was restarted"]):
                body = api_body(f"split-{n}", text=text)
                headers = signed_headers(inbox["signing_secret"], body)
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 200
                await received(agent, text)
                await inbound_counted(session, base, token, n + 1)
                if n == 0:
                    await worker_metrics_in_the_gateways(session, base)
                if n == 0:  # the worker dies: it is started again, and the path works again
                    os.kill(child, signal.SIGKILL)
                    await unready_while_the_child_is_away(session, base)
                    child = await child_of(session, base, restarts=1)
        await agent.client.disconnect()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert await gone(child), "no orphan worker"
        assert "worker process exited; starting it again" in log.read_text()
    finally:
        if agent.client.connected:
            await agent.client.disconnect()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_the_child_goes_when_the_parent_is_killed(
    tmp_path: Path, split_env: dict[str, str]
) -> None:
    log = tmp_path / "hub.log"
    proc = start_hub(split_env, log)
    base = f"http://127.0.0.1:{split_env['HUB_PORT']}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, proc, log)
            child = await child_of(session, base)
        proc.kill()  # no clean-up in the parent at all: the kernel tells the child
        proc.wait()
        assert await gone(child), "no orphan worker"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
