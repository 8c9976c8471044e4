"""The cluster contract every backend passes (in-process, Redis, PostgreSQL): presence rules and
wake-ups; and what the backends several processes share pass too (`SharedClusterConformance`).

A backend's test module subclasses :class:`ClusterConformance` and provides the ``cluster``
fixture (a started cluster whose wake-ups are recorded in ``woken``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from realtime.cluster import Cluster
from realtime.cluster.shared import SharedCluster


class Recorder:
    """Records what a cluster calls back with."""

    def __init__(self) -> None:
        self.woken: list[set[str] | None] = []
        self.offline: list[tuple[str, str]] = []

    def on_logged(self, accounts: set[str] | None) -> None:
        self.woken.append(accounts)

    async def on_offline(self, account_id: str, agent_id: str) -> None:
        self.offline.append((account_id, agent_id))

    async def wait_woken(self, account_id: str) -> None:
        async with asyncio.timeout(10):
            while not any(w is not None and account_id in w for w in self.woken):
                await asyncio.sleep(0.01)


class ClusterConformance:
    async def test_first_socket_brings_an_agent_online_and_the_last_takes_it_offline(
        self, cluster: Cluster
    ) -> None:
        assert await cluster.status("acc", "ann") == "offline"
        assert await cluster.connected("acc", "ann", "s1") is True
        assert await cluster.connected("acc", "ann", "s2") is False, "already online"
        assert await cluster.status("acc", "ann") == "online"
        assert await cluster.disconnected("acc", "ann", "s1") is False, "s2 is still there"
        assert await cluster.status("acc", "ann") == "online"
        assert await cluster.disconnected("acc", "ann", "s2") is True
        assert await cluster.status("acc", "ann") == "offline"
        assert await cluster.of_account("acc") == {}

    async def test_a_chosen_status_holds_until_the_last_socket_goes(self, cluster: Cluster) -> None:
        await cluster.connected("acc", "bob", "s1")
        await cluster.connected("acc", "bob", "s2")
        assert await cluster.set_status("acc", "bob", "busy") is True
        await cluster.disconnected("acc", "bob", "s1")
        assert await cluster.status("acc", "bob") == "busy"
        await cluster.disconnected("acc", "bob", "s2")
        await cluster.connected("acc", "bob", "s3")
        assert await cluster.status("acc", "bob") == "online", "a new session starts online"
        await cluster.disconnected("acc", "bob", "s3")

    async def test_presence_is_per_account(self, cluster: Cluster) -> None:
        await cluster.connected("acc", "cat", "s1")
        await cluster.connected("other", "dan", "s2")
        assert await cluster.of_account("acc") == {"cat": "online"}
        assert await cluster.of_account("other") == {"dan": "online"}
        await cluster.disconnected("acc", "cat", "s1")
        await cluster.disconnected("other", "dan", "s2")

    async def test_status_of_an_agent_without_sockets_cannot_be_set(self, cluster: Cluster) -> None:
        assert await cluster.set_status("acc", "nobody", "busy") is False
        assert await cluster.status("acc", "nobody") == "offline"
        with pytest.raises(ValueError):
            await cluster.set_status("acc", "nobody", "asleep")

    async def test_an_unknown_socket_going_changes_nothing(self, cluster: Cluster) -> None:
        await cluster.connected("acc", "eve", "s1")
        assert await cluster.disconnected("acc", "eve", "not-a-socket") is False
        assert await cluster.status("acc", "eve") == "online"
        await cluster.disconnected("acc", "eve", "s1")

    async def test_logged_wakes_this_process(self, cluster: Cluster, recorder: Recorder) -> None:
        cluster.logged({"acc-1"})
        await recorder.wait_woken("acc-1")


#: starts one member of a shared cluster (one per simulated hub process)
Started = Callable[[Recorder], Awaitable[SharedCluster]]


async def wait_up(*members: SharedCluster) -> None:
    async with asyncio.timeout(15):
        while not all(m.up for m in members):
            await asyncio.sleep(0.02)


class SharedClusterConformance(ClusterConformance):
    """Backends several processes share (Redis, PostgreSQL): the module also provides ``start``,
    which starts another member, as another hub process would."""

    async def test_processes_share_presence_and_wake_each_other(self, start: Started) -> None:
        seen_a, seen_b = Recorder(), Recorder()
        a, b = await start(seen_a), await start(seen_b)
        assert await a.connected("acc", "ann", "a1") is True
        assert await b.connected("acc", "ann", "b1") is False, "online already, through A"
        assert await b.status("acc", "ann") == "online"
        assert await b.set_status("acc", "ann", "busy") is True
        assert await a.of_account("acc") == {"ann": "busy"}
        assert await a.disconnected("acc", "ann", "a1") is False
        assert await b.disconnected("acc", "ann", "b1") is True
        assert await a.status("acc", "ann") == "offline"
        a.logged({"acc"})
        await seen_b.wait_woken("acc")

    async def test_a_vanished_process_is_swept_and_its_agents_announced_offline(
        self, start: Started
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
