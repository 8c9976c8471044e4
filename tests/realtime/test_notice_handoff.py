"""Split layout (the log's writer in another process, no Redis): the socket streams are handed the
logged rows in the PostgreSQL notices and send them without reading the log back; a gap (a lost
notice, a row too big for a notice) is filled from the log, in order and once; and with the
listener down the streams still deliver by polling the log.

Two cluster members on one real database stand for the two processes: the writer logs rows in
the real replay log and hands them over as the worker child does; the gateway's real streams
deliver them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from hub.events.envelope import Head
from realtime.cluster.postgres import LISTENER_NAME, PostgresCluster
from realtime.log import Logged, append
from realtime.log import read_after as real_read_after
from realtime.streams import Streams

pytestmark = pytest.mark.postgres

ACCOUNT = "acc-split"


@dataclass
class Split:
    pool: asyncpg.Pool[Any]
    gateway: PostgresCluster
    writer: PostgresCluster
    streams: Streams
    #: the cursors the gateway's streams read the log after
    reads: list[int]
    #: (sequence, content) of every event sent to the socket, in order
    sent: list[tuple[int, str]] = field(default_factory=list)

    async def log(self, *texts: str, announce: bool = True) -> Logged:
        """Log events in one committed transaction; hand them over unless the notice is lost."""
        heads, raws = [], []
        for text in texts:
            head = Head(
                id=f"evt-{text}",
                type="message.received",
                v=1,
                occurred_at=datetime.now(UTC),
                account_id=ACCOUNT,
                conversation_id=None,
                correlation_id="c",
            )
            heads.append(head)
            raws.append(json.dumps({"id": head.id, "payload": {"content": text}}).encode())
        async with self.pool.acquire() as conn, conn.transaction():
            logged = await append(conn, heads, raws, [None] * len(texts), [None] * len(texts))
        if announce:
            self.writer.committed(logged)
        return logged

    async def wait_sent(self, count: int) -> list[int]:
        async with asyncio.timeout(10):
            while len(self.sent) < count:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # anything sent twice would arrive by now
        return [seq for seq, _ in self.sent]


@pytest.fixture
async def split(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Split]:
    reads: list[int] = []

    async def read_after(pool: Any, account_id: str, seq: int, limit: int) -> Any:
        reads.append(seq)
        return await real_read_after(pool, account_id, seq, limit)

    monkeypatch.setattr("realtime.streams.read_after", read_after)
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=4)
    sent: list[tuple[int, str]] = []

    async def emit(sids: list[str], name: str, data: bytes) -> None:
        if name == "events":
            sent.extend((e["seq"], e["event"]["payload"]["content"]) for e in json.loads(data))

    async def nobody(account_id: str, agent_id: str) -> None:
        return None

    streams = Streams(pool, emit)
    gateway = PostgresCluster(db_dsn, heartbeat=0.2, down_poll=0.1)
    writer = PostgresCluster(db_dsn, heartbeat=0.2, down_poll=0.1)
    await gateway.start(streams.notify, nobody, streams.feed)
    await writer.start(lambda _: None, nobody, lambda _: None)  # (no sockets in the writer)
    async with asyncio.timeout(15):
        while not (gateway.up and writer.up):
            await asyncio.sleep(0.02)
    streams.add(ACCOUNT, "sid-1", 0, 0, False)
    async with asyncio.timeout(10):
        while not reads:  # the stream's first pass (on connect) read the empty log
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    reads.clear()
    yield Split(pool, gateway, writer, streams, reads, sent)
    await streams.close()
    await gateway.stop()
    await writer.stop()
    await pool.close()


async def test_rows_in_the_notice_are_sent_without_reading_the_log(split: Split) -> None:
    await split.log("a", "b", "c")
    await split.log("d", "e")
    assert await split.wait_sent(5) == [1, 2, 3, 4, 5]
    assert [content for _, content in split.sent] == ["a", "b", "c", "d", "e"]
    assert split.reads == []


async def test_a_lost_notice_is_filled_from_the_log_in_order_and_once(split: Split) -> None:
    await split.log("a", "b", announce=False)  # its notice never arrives
    await split.log("c", "d")  # 3 and 4 follow a gap: the stream reads the log from 0
    assert await split.wait_sent(4) == [1, 2, 3, 4]
    assert split.reads == [0]
    await split.log("e")  # on from the head again: handed over
    assert await split.wait_sent(5) == [1, 2, 3, 4, 5]
    assert split.reads == [0]


async def test_a_row_too_big_for_a_notice_is_read_from_the_log_in_order_and_once(
    split: Split,
) -> None:
    big = "x" * (split.writer.payload_max + 100)
    await split.log("a", big, "c")
    assert await split.wait_sent(3) == [1, 2, 3]
    assert split.sent[1][1] == big
    assert split.reads == [0]
    await split.log("d")
    assert await split.wait_sent(4) == [1, 2, 3, 4]
    assert split.reads == [0]


async def test_with_the_listener_down_the_streams_poll_the_log(split: Split, db_dsn: str) -> None:
    good = split.gateway._dsn
    split.gateway._dsn = "postgresql://hub@127.0.0.1:1/unreachable"  # it cannot listen again
    admin = await asyncpg.connect(db_dsn)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            LISTENER_NAME,
        )
    finally:
        await admin.close()
    async with asyncio.timeout(10):
        while split.gateway.up:
            await asyncio.sleep(0.02)
    await split.log("a", "b")
    await split.log("c")
    assert await split.wait_sent(3) == [1, 2, 3]
    assert split.reads, "delivered by reading the log"
    assert not split.gateway.up
    split.gateway._dsn = good
