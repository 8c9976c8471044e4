"""The PostgreSQL cluster passes the cluster contract, and across processes (here: two cluster
instances on one real database): shared presence, wake-ups over LISTEN/NOTIFY, a vanished process
swept, and recovery after the listening connection is cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from realtime.cluster.notices import encode
from realtime.cluster.postgres import LISTENER_NAME, PostgresCluster
from realtime.cluster.shared import SharedCluster
from tests.realtime.cluster_conformance import (
    Recorder,
    SharedClusterConformance,
    Started,
    wait_up,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def start(db_dsn: str) -> AsyncIterator[Started]:
    """Start a cluster member (one per simulated hub process); all are stopped at the end."""
    made: list[PostgresCluster] = []

    async def start(recorder: Recorder) -> PostgresCluster:
        member = PostgresCluster(db_dsn, heartbeat=0.2, down_poll=0.1)
        await member.start(recorder.on_logged, recorder.on_offline, recorder.on_committed)
        made.append(member)
        await wait_up(member)
        return member

    yield start
    for member in made:
        await member.stop()


@pytest.fixture
async def cluster(start: Started, recorder: Recorder) -> SharedCluster:
    return await start(recorder)


class TestPostgresCluster(SharedClusterConformance):
    pass


async def test_many_accounts_are_woken_in_notices_within_the_payload_limit(
    start: Started,
) -> None:
    seen_a, seen_b = Recorder(), Recorder()
    a, _ = await start(seen_a), await start(seen_b)
    accounts = {f"account-{n:05d}" for n in range(2000)}  # ~30 kB of names
    assert len(encode(a.proc, [], accounts, a.payload_max)) > 1
    a.logged(accounts)
    async with asyncio.timeout(10):
        while not accounts <= set().union(*(w or set() for w in seen_b.woken)):
            await asyncio.sleep(0.02)


async def test_wake_ups_and_presence_recover_after_the_listening_connection_is_cut(
    start: Started, db_dsn: str
) -> None:
    seen_a, seen_b = Recorder(), Recorder()
    a, b = await start(seen_a), await start(seen_b)
    await a.connected("acc", "ann", "a1")
    await a.set_status("acc", "ann", "busy")
    admin = await asyncpg.connect(db_dsn)
    try:
        # every process's LISTEN connection cut, and the presence emptied (an UNLOGGED table
        # after a server crash): each process falls back to polling, then writes itself back
        await admin.execute("TRUNCATE realtime_sockets, realtime_presence, realtime_procs")
        cut = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            LISTENER_NAME,
        )
        assert cut == 2
    finally:
        await admin.close()
    async with asyncio.timeout(10):
        while None not in seen_b.woken[1:]:  # the first None is the start's own
            await asyncio.sleep(0.02)
    await wait_up(a, b)
    async with asyncio.timeout(10):
        while await b.of_account("acc") != {"ann": "busy"}:
            await asyncio.sleep(0.05)
    seen_b.woken.clear()
    a.logged({"acc"})
    await seen_b.wait_woken("acc")
    await a.disconnected("acc", "ann", "a1")
    assert await b.status("acc", "ann") == "offline"
