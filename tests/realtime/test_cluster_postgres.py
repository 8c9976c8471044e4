"""The PostgreSQL cluster passes the cluster contract, and across processes (here: two cluster
instances on one real database): shared presence, wake-ups over LISTEN/NOTIFY, a vanished process
swept, and recovery after the listening connection is cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from realtime.cluster.postgres import LISTENER_NAME, PostgresCluster, _notices
from tests.realtime.cluster_conformance import ClusterConformance, Recorder

pytestmark = pytest.mark.postgres

Started = Callable[[Recorder], Awaitable[PostgresCluster]]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def start(db_dsn: str) -> AsyncIterator[Started]:
    """Start a cluster member (one per simulated hub process); all are stopped at the end."""
    made: list[PostgresCluster] = []

    async def start(recorder: Recorder) -> PostgresCluster:
        member = PostgresCluster(db_dsn, heartbeat=0.2, down_poll=0.1)
        await member.start(recorder.on_logged, recorder.on_offline)
        made.append(member)
        await wait_up(member)
        return member

    yield start
    for member in made:
        await member.stop()


@pytest.fixture
async def cluster(start: Started, recorder: Recorder) -> PostgresCluster:
    return await start(recorder)


async def wait_up(*members: PostgresCluster) -> None:
    async with asyncio.timeout(15):
        while not all(m.up for m in members):
            await asyncio.sleep(0.02)


class TestPostgresCluster(ClusterConformance):
    pass


async def test_processes_share_presence_and_wake_each_other(start: Started) -> None:
    seen_a, seen_b = Recorder(), Recorder()
    a, b = await start(seen_a), await start(seen_b)
    assert await a.connected("acc", "ann", "a1") is True
    assert await b.connected("acc", "ann", "b1") is False, "online already, through process A"
    assert await b.status("acc", "ann") == "online"
    assert await b.set_status("acc", "ann", "busy") is True
    assert await a.of_account("acc") == {"ann": "busy"}
    assert await a.disconnected("acc", "ann", "a1") is False
    assert await b.disconnected("acc", "ann", "b1") is True
    assert await a.status("acc", "ann") == "offline"
    a.logged({"acc"})
    await seen_b.wait_woken("acc")


async def test_many_accounts_are_woken_in_notices_within_the_payload_limit(
    start: Started,
) -> None:
    seen_a, seen_b = Recorder(), Recorder()
    a, _ = await start(seen_a), await start(seen_b)
    accounts = {f"account-{n:05d}" for n in range(2000)}  # ~30 kB of names
    assert len(_notices(a.proc, accounts)) > 1
    a.logged(accounts)
    async with asyncio.timeout(10):
        while not accounts <= set().union(*(w or set() for w in seen_b.woken)):
            await asyncio.sleep(0.02)


async def test_a_vanished_process_is_swept_and_its_agents_announced_offline(
    start: Started,
) -> None:
    seen_a, seen_b = Recorder(), Recorder()
    a, b = await start(seen_a), await start(seen_b)
    await a.connected("acc", "ann", "a1")
    await b.connected("acc", "bob", "b1")
    for task in a._tasks:  # process A dies: no goodbye, its heartbeat simply stops
        task.cancel()
    async with asyncio.timeout(15):
        while ("acc", "ann") not in seen_b.offline:
            await asyncio.sleep(0.05)
    assert seen_b.offline == [("acc", "ann")], "announced once, only the vanished agent"
    assert await b.of_account("acc") == {"bob": "online"}
    await b.disconnected("acc", "bob", "b1")


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
