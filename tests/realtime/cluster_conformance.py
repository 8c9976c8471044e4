"""The cluster contract every backend passes (in-process, Redis, PostgreSQL): presence rules,
wake-ups and the hand-over of logged rows; and what the backends several processes share pass too
(`SharedClusterConformance`).

A backend's test module subclasses :class:`ClusterConformance` and provides the ``cluster``
fixture (a started cluster whose wake-ups are recorded in ``woken``, the rows it was handed in
``handed``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from realtime.cluster import Cluster
from realtime.cluster.shared import SharedCluster
from realtime.log import Logged, LoggedEvent


class Recorder:
    """Records what a cluster calls back with."""

    def __init__(self) -> None:
        self.woken: list[set[str] | None] = []
        self.offline: list[tuple[str, str]] = []
        self.handed: list[Logged] = []

    def on_logged(self, accounts: set[str] | None) -> None:
        self.woken.append(accounts)

    def on_committed(self, logged: Logged) -> None:
        self.handed.append(logged)

    def rows(self, account_id: str) -> list[LoggedEvent]:
        """What was handed over of an account, in the order it arrived."""
        return [e for logged in self.handed for e in logged.get(account_id, [])]

    async def on_offline(self, account_id: str, agent_id: str) -> None:
        self.offline.append((account_id, agent_id))

    async def wait_woken(self, account_id: str) -> None:
        async with asyncio.timeout(10):
            while not any(w is not None and account_id in w for w in self.woken):
                await asyncio.sleep(0.01)

    async def wait_rows(self, account_id: str, count: int) -> list[LoggedEvent]:
        async with asyncio.timeout(10):
            while len(self.rows(account_id)) < count:
                await asyncio.sleep(0.01)
        return self.rows(account_id)


def logged_event(seq: int, text: str = "hi", inbox_id: str | None = "inbox-1") -> LoggedEvent:
    """A row as the log reads it back (the event's JSON and its context as stored)."""
    return LoggedEvent(
        seq,
        f"evt-{seq}",
        inbox_id,
        "message.received",
        json.dumps({"id": f"evt-{seq}", "payload": {"content": f"{text} ☕"}}, ensure_ascii=False),
        None if seq % 2 else f'{{"unread": {seq}}}',
    )


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

    async def test_committed_rows_are_handed_to_this_process_at_once(
        self, cluster: Cluster, recorder: Recorder
    ) -> None:
        commit = {"acc-1": [logged_event(1), logged_event(2)]}
        cluster.committed(commit)
        assert recorder.handed == [commit], "synchronously, in the writer's own process"


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

    async def test_processes_hand_each_other_the_logged_rows_in_order(self, start: Started) -> None:
        seen_a, seen_b = Recorder(), Recorder()
        a, _ = await start(seen_a), await start(seen_b)
        sent = [logged_event(seq, text="x" * 300) for seq in range(1, 61)]  # several notices
        for n in range(0, 60, 6):  # ten commits, two accounts each
            a.committed({"acc": sent[n : n + 6], "other": [logged_event(n // 6 + 1)]})
        assert await seen_b.wait_rows("acc", 60) == sent, "equal to the log's rows, in order"
        assert [e.seq for e in await seen_b.wait_rows("other", 10)] == list(range(1, 11))
        await asyncio.sleep(0.2)
        assert len(seen_b.rows("acc")) == 60, "each row once"
        assert len(seen_a.rows("acc")) == 60, "the writer's own process only directly"
        assert not [w for w in seen_b.woken if w is not None], "nothing to read back"

    async def test_a_row_too_big_for_a_notice_wakes_its_account_instead(
        self, start: Started
    ) -> None:
        seen_a, seen_b = Recorder(), Recorder()
        a, _ = await start(seen_a), await start(seen_b)
        huge = logged_event(2, text="y" * a.payload_max)
        a.committed({"acc": [logged_event(1), huge, logged_event(3)]})
        await seen_b.wait_woken("acc")
        assert [e.seq for e in await seen_b.wait_rows("acc", 2)] == [1, 3]

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
