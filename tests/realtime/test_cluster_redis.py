"""The Redis cluster passes the cluster contract, and across processes (here: two cluster
instances on one real redis-server): shared presence, wake-ups, a vanished process swept, and
recovery after Redis restarts empty."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from realtime.cluster.redis_backend import RedisCluster
from realtime.cluster.shared import SharedCluster
from tests.realtime.cluster_conformance import (
    Recorder,
    SharedClusterConformance,
    Started,
    wait_up,
)
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def start(redis_server: RedisServer) -> AsyncIterator[Started]:
    """Start a cluster member (one per simulated hub process); all are stopped at the end."""
    made: list[RedisCluster] = []

    async def start(recorder: Recorder) -> RedisCluster:
        member = RedisCluster(redis_server.url, heartbeat=0.2, down_poll=0.1)
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


class TestRedisCluster(SharedClusterConformance):
    pass


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
