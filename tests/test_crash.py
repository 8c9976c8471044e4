"""Crash safety of the embedded default: SIGKILL `hub serve` mid-stream, restart it, and check that
every acknowledged message is stored exactly once and that the journal consumer saw each once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres
from tests.support.api_channel import api_body, signed_headers
from tests.support.processes import free_port, hub_cli, hub_env, start_hub, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def test_sigkill_mid_stream_loses_and_doubles_nothing(tmp_path: Path) -> None:
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "hub.log"
    env = hub_env(data_dir, port)
    inbox = hub_cli(env, "inbox", "create", "--channel", "api", "--name", "Crash")
    url = f"http://127.0.0.1:{port}/webhooks/api/{inbox['id']}"
    secret = inbox["signing_secret"]
    base = f"http://127.0.0.1:{port}"

    acked: set[str] = set()
    unacked: set[str] = set()
    # the kill comes a third of the way in, with 16 requests in flight; the hub then settles all
    # of them (journal, AI analysis) before the counts: more messages would only take longer
    total = 1200

    async def send(session: aiohttp.ClientSession, pmid: str) -> bool:
        body = api_body(pmid, identifier=f"contact-{int(pmid[2:]) % 97}", text=f"message {pmid}")
        try:
            async with session.post(url, data=body, headers=signed_headers(secret, body)) as r:
                if r.status == 200:
                    acked.add(pmid)
                    return True
                assert r.status in (502, 503), await r.text()  # never a 4xx for good input
        except (TimeoutError, aiohttp.ClientError):
            pass
        return False

    proc = start_hub(env, log)
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await wait_healthy(session, base, proc, log)
            queue = [f"m-{i}" for i in range(total)]

            async def worker() -> None:
                while queue:
                    pmid = queue.pop(0)
                    if not await send(session, pmid):
                        unacked.add(pmid)

            workers = [asyncio.create_task(worker()) for _ in range(16)]
            async with asyncio.timeout(60):
                while len(acked) < total // 3:
                    await asyncio.sleep(0.005)
            proc.send_signal(signal.SIGKILL)  # mid-stream, with requests in flight
            proc.wait()
            await asyncio.gather(*workers)
            assert unacked, "the kill interrupted the stream"
            acked_before_restart = set(acked)

            proc = start_hub(env, log)
            await wait_healthy(session, base, proc, log)
            # the provider retries what failed, and re-sends some that succeeded
            for pmid in sorted(unacked) + sorted(acked_before_restart)[:50]:
                assert await send(session, pmid), pmid
            assert acked == {f"m-{i}" for i in range(total)}

            # the journal consumer catches up with everything, restart included
            dsn = await start_embedded_postgres(data_dir)
            conn = await asyncpg.connect(dsn)
            try:
                async with asyncio.timeout(60):
                    while await conn.fetchval(
                        """SELECT count(*) FROM messages m WHERE NOT EXISTS (
                               SELECT 1 FROM event_log e WHERE e.type = 'message.received'
                                  AND e.event->'payload'->>'message_id' = m.id)"""
                    ) or await conn.fetchval("SELECT count(*) FROM outbox"):
                        await asyncio.sleep(0.2)
                stored = await conn.fetch("SELECT provider_message_id FROM messages")
                journal = await conn.fetchval(
                    "SELECT count(*) FROM event_log WHERE type = 'message.received'"
                )
            finally:
                await conn.close()
    finally:
        exit_code = proc.poll()
        if exit_code is None:
            proc.send_signal(signal.SIGTERM)
            exit_code = proc.wait(timeout=30)
        stop_embedded_postgres(data_dir)
    pmids = [r["provider_message_id"] for r in stored]
    assert len(pmids) == len(set(pmids)) == total, "every acknowledged message once"
    assert journal == total, "the consumer saw every stored message exactly once"
    assert exit_code == 0, log.read_text()[-3000:]
