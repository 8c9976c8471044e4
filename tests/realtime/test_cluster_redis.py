"""The Redis cluster passes the cluster contract, and across processes (here: two cluster
instances on one real redis-server): shared presence, wake-ups, a vanished process swept, and
recovery after Redis restarts empty."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from realtime.cluster.redis_backend import RedisCluster
from tests.realtime.cluster_conformance import ClusterConformance, Recorder
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

Started = Callable[[Recorder], Awaitable[RedisCluster]]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def start(redis_server: RedisServer) -> AsyncIterator[Started]:
    """Start a cluster member (one per simulated hub process); all are stopped at the end."""
    made: list[RedisCluster] = []

    async def start(recorder: Recorder) -> RedisCluster:
        member = RedisCluster(redis_server.url, heartbeat=0.2, down_poll=0.1)
        await member.start(recorder.on_logged, recorder.on_offline)
        made.append(member)
        await wait_up(member)
        return member

    yield start
    for member in made:
        await member.stop()


@pytest.fixture
async def cluster(start: Started, recorder: Recorder) -> RedisCluster:
    return await start(recorder)


async def wait_up(*members: RedisCluster) -> None:
    async with asyncio.timeout(15):
        while not all(m.up for m in members):
            await asyncio.sleep(0.02)


class TestRedisCluster(ClusterConformance):
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


async def test_presence_and_wake_ups_recover_after_redis_restarts_empty(
    start: Started, redis_server: RedisServer
) -> None:
    seen_a, seen_b = Recorder(), Recorder()
    a, b = await start(seen_a), await start(seen_b)
    await a.connected("acc", "ann", "a1")
    await a.set_status("acc", "ann", "busy")
    await b.connected("acc", "bob", "b1")
    redis_server.stop()
    async with asyncio.timeout(10):
        while a.up or b.up:
            await asyncio.sleep(0.02)
    woken_while_down = len(seen_b.woken)
    await asyncio.sleep(0.5)
    assert len(seen_b.woken) > woken_while_down, "streams keep polling the log while it is down"
    assert await a.status("acc", "ann") == "busy", "local knowledge while Redis is away"
    redis_server.start()  # empty: nothing was saved
    await wait_up(a, b)
    assert await b.of_account("acc") == {"ann": "busy", "bob": "online"}
    seen_b.woken.clear()
    a.logged({"acc"})
    await seen_b.wait_woken("acc")
    await a.disconnected("acc", "ann", "a1")
    await b.disconnected("acc", "bob", "b1")
