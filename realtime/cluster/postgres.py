"""Several hub processes sharing one PostgreSQL and no Redis (the embedded default split into a
gateway and worker processes): presence in tables, the logged rows and wake-ups over
LISTEN/NOTIFY.

The same rules as the Redis backend. A notice carries the rows the log's writer just committed
(realtime/cluster/notices.py), each notice under NOTIFY's 8,000-byte limit, so the listening
processes' streams send them without reading the log back; a row too big for a notice goes as
"account X's log grew, read it". The pending notices go in one statement, delivered in order.
While the listening connection is down every process wakes all its streams about once a second
instead (slower, still complete);
when it is back, the process listens again, wakes all its streams once and writes its own sockets
and chosen statuses back (the tables are UNLOGGED: a crashed server brings them back empty).

Each process records its sockets under its own id and beats a row in ``realtime_procs``; when a
process dies without saying goodbye, another notices the expired heartbeat, removes the dead
process's sockets and announces the agents that are now offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from hub.app import DB_UNAVAILABLE
from realtime.cluster.contract import OnCommitted, OnLogged, OnOffline
from realtime.cluster.shared import SharedCluster

log = logging.getLogger(__name__)

CHANNEL = "hub_realtime_logged"
#: the listening connection's name in ``pg_stat_activity``
LISTENER_NAME = "hub-realtime-listen"
#: NOTIFY payloads must be shorter than 8,000 bytes
_PAYLOAD_MAX = 7900
_DOWN = (*DB_UNAVAILABLE, asyncpg.PostgresConnectionError, TimeoutError)
#: the first key of the per-agent advisory locks (the two-int key space, apart from the others)
_LOCK_CLASS = 0x5254  # "RT"

_LOCK = "SELECT pg_advisory_xact_lock($1, hashtext($2 || E'\\t' || $3))"
_BEAT = (
    "INSERT INTO realtime_procs (proc, alive_until) VALUES ($1, now() + make_interval(secs => $2))"
    " ON CONFLICT (proc) DO UPDATE SET alive_until = EXCLUDED.alive_until"
)
_AGENT_SOCKETS = "SELECT count(*) FROM realtime_sockets WHERE account_id = $1 AND agent_id = $2"
_SET_STATUS = (
    "INSERT INTO realtime_presence (account_id, agent_id, status) VALUES ($1, $2, $3)"
    " ON CONFLICT (account_id, agent_id) DO UPDATE SET status = EXCLUDED.status"
)
_FORGET_AGENT = "DELETE FROM realtime_presence WHERE account_id = $1 AND agent_id = $2"


class PostgresCluster(SharedCluster):
    store = "the database"
    down = _DOWN
    payload_max = _PAYLOAD_MAX

    def __init__(
        self, dsn: str | Callable[[], str], *, heartbeat: float = 5.0, down_poll: float = 1.0
    ) -> None:
        super().__init__(heartbeat=heartbeat, down_poll=down_poll)
        #: the DSN, or how to get it once the hub has started its database
        self._dsn = dsn
        self._pool: asyncpg.Pool[Any] | None = None

    def _url(self) -> str:
        return self._dsn if isinstance(self._dsn, str) else self._dsn()

    async def start(
        self, on_logged: OnLogged, on_offline: OnOffline, on_committed: OnCommitted
    ) -> None:
        self._on_logged, self._on_offline = on_logged, on_offline
        self._on_committed = on_committed
        # no connection yet (min_size 0): a database that is down at start is waited for below
        self._pool = await asyncpg.create_pool(
            self._url(), min_size=0, max_size=2, command_timeout=10
        )
        self._start_loops(asyncio.create_task(self._listen(), name="cluster-listen"))

    async def stop(self) -> None:
        await self._stop_loops()
        if self._pool is None:
            return
        with contextlib.suppress(*_DOWN):  # say goodbye: our sockets are gone with us
            for sid, (account_id, agent_id) in list(self._local.items()):
                await self._store_disconnect(self.proc, sid, account_id, agent_id)
            async with self._pool.acquire() as conn:
                await conn.execute("DELETE FROM realtime_procs WHERE proc = $1", self.proc)
        await self._pool.close()
        self._pool = None

    def _db(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise ConnectionError("the cluster is not started")
        return self._pool

    # --- wake-ups ---------------------------------------------------------------------------

    async def _send(self, notices: list[bytes]) -> None:
        # one statement, one transaction: delivered together, in the array's order
        await self._db().execute(
            "SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n",
            CHANNEL,
            [notice.decode() for notice in notices],
        )

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self._heard(str(payload))

    async def _listen(self) -> None:
        first = True
        while not self._stopping:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await asyncpg.connect(
                    self._url(), timeout=5, server_settings={"application_name": LISTENER_NAME}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                await self._restore()
                self.up = True
                if not first:
                    log.info("database reachable again; realtime streams resumed")
                first = False
                self._on_logged(None)  # anything logged while we were not listening
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._heartbeat)
                    if not lost.is_set():  # a connection that went silently is found here
                        await conn.fetchval("SELECT 1", timeout=self._heartbeat)
                raise ConnectionError("the listening connection ended")
            except _DOWN as exc:
                if self.up or first:
                    log.warning(
                        "realtime listener lost; polling the log", extra={"error": repr(exc)}
                    )
                self.up = False
                first = False
                self._on_logged(None)  # keep delivering from the log while it is away
                await asyncio.sleep(self._down_poll)
            finally:
                if conn is not None:
                    conn.terminate()

    # --- presence -----------------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        async with self._db().acquire() as conn:
            await conn.execute(_BEAT, self.proc, self._heartbeat * 3 + 1)

    async def _restore(self) -> None:
        """Make the tables agree with this process's own sockets (after a start or an outage)."""
        async with self._db().acquire() as conn:
            await conn.execute(_BEAT, self.proc, self._heartbeat * 3 + 1)
            recorded = await conn.fetch(
                "SELECT sid, account_id, agent_id FROM realtime_sockets WHERE proc = $1", self.proc
            )
        await self._write_back((r[0], r[1], r[2]) for r in recorded)

    async def _sweep(self) -> None:
        """Remove the sockets of processes whose heartbeat expired, announcing who went offline."""
        offline: list[tuple[str, str]] = []
        async with self._db().acquire() as conn, conn.transaction():
            dead = await conn.fetch(
                "SELECT proc FROM realtime_procs WHERE alive_until < now() AND proc <> $1"
                " FOR UPDATE SKIP LOCKED",
                self.proc,
            )
            for row in dead:
                proc = row["proc"]
                gone = await conn.fetch(
                    "DELETE FROM realtime_sockets WHERE proc = $1 RETURNING account_id, agent_id",
                    proc,
                )
                for account_id, agent_id in sorted({(r[0], r[1]) for r in gone}):
                    await conn.execute(_LOCK, _LOCK_CLASS, account_id, agent_id)
                    if not await conn.fetchval(_AGENT_SOCKETS, account_id, agent_id):
                        await conn.execute(_FORGET_AGENT, account_id, agent_id)
                        offline.append((account_id, agent_id))
                await conn.execute("DELETE FROM realtime_procs WHERE proc = $1", proc)
                log.info("removed the sockets of a vanished hub process", extra={"proc": proc})
        for account_id, agent_id in offline:  # once committed: announced by one process only
            if self._on_offline is not None:
                await self._on_offline(account_id, agent_id)

    async def _store_connect(self, sid: str, account_id: str, agent_id: str) -> bool:
        async with self._db().acquire() as conn, conn.transaction():
            await conn.execute(_LOCK, _LOCK_CLASS, account_id, agent_id)
            # the process's row too, so a socket never outlives a process nobody can sweep
            await conn.execute(_BEAT, self.proc, self._heartbeat * 3 + 1)
            await conn.execute(
                "INSERT INTO realtime_sockets (proc, sid, account_id, agent_id)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                self.proc,
                sid,
                account_id,
                agent_id,
            )
            row = await conn.fetchrow(
                f"SELECT ({_AGENT_SOCKETS}), EXISTS (SELECT 1 FROM realtime_presence"
                " WHERE account_id = $1 AND agent_id = $2)",
                account_id,
                agent_id,
            )
            assert row is not None
            if row[0] == 1 or not row[1]:
                await conn.execute(_SET_STATUS, account_id, agent_id, "online")
                return True
            return False

    async def _store_disconnect(self, proc: str, sid: str, account_id: str, agent_id: str) -> bool:
        async with self._db().acquire() as conn, conn.transaction():
            await conn.execute(_LOCK, _LOCK_CLASS, account_id, agent_id)
            removed = await conn.fetchval(
                "DELETE FROM realtime_sockets WHERE proc = $1 AND sid = $2 RETURNING 1", proc, sid
            )
            if removed and not await conn.fetchval(_AGENT_SOCKETS, account_id, agent_id):
                await conn.execute(_FORGET_AGENT, account_id, agent_id)
                return True
            return False

    async def _store_set(self, account_id: str, agent_id: str, status: str) -> bool:
        async with self._db().acquire() as conn, conn.transaction():
            await conn.execute(_LOCK, _LOCK_CLASS, account_id, agent_id)
            if not await conn.fetchval(_AGENT_SOCKETS, account_id, agent_id):
                return False
            await conn.execute(_SET_STATUS, account_id, agent_id, status)
            return True

    async def _store_status(self, account_id: str, agent_id: str) -> str | None:
        value = await self._db().fetchval(
            "SELECT status FROM realtime_presence WHERE account_id = $1 AND agent_id = $2",
            account_id,
            agent_id,
        )
        return str(value) if value else None

    async def _store_of_account(self, account_id: str) -> dict[str, str]:
        rows = await self._db().fetch(
            "SELECT agent_id, status FROM realtime_presence WHERE account_id = $1",
            account_id,
        )
        return {r["agent_id"]: r["status"] for r in rows}
