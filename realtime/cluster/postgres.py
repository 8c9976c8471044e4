"""Several hub processes sharing one PostgreSQL and no Redis (the embedded default split into a
gateway and worker processes): presence in tables, wake-ups over LISTEN/NOTIFY.

The same rules as the Redis backend. PostgreSQL holds no event here either: a notice only says
"account X's log grew, read it" (the replay log is its own table). While the listening connection
is down every process wakes all its streams about once a second instead (slower, still complete);
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
from collections import Counter
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from hub.app import DB_UNAVAILABLE
from hub.ids import new_id
from realtime.cluster.contract import STATUSES, OnLogged, OnOffline

log = logging.getLogger(__name__)

CHANNEL = "hub_realtime_logged"
#: the listening connection's name in ``pg_stat_activity``
LISTENER_NAME = "hub-realtime-listen"
#: NOTIFY payloads are limited to 8,000 bytes; a long list of accounts goes in several notices
_PAYLOAD_MAX = 7000
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


def _notices(proc: str, accounts: set[str]) -> list[str]:
    """The JSON notices saying these accounts' logs grew, each within NOTIFY's payload limit."""
    notices: list[str] = []
    batch: list[str] = []
    size = 0
    for account in sorted(accounts):
        if batch and size + len(account) + 3 > _PAYLOAD_MAX:
            notices.append(orjson.dumps({"from": proc, "accounts": batch}).decode())
            batch, size = [], 0
        batch.append(account)
        size += len(account) + 3
    notices.append(orjson.dumps({"from": proc, "accounts": batch}).decode())
    return notices


class PostgresCluster:
    def __init__(
        self, dsn: str | Callable[[], str], *, heartbeat: float = 5.0, down_poll: float = 1.0
    ) -> None:
        self.proc = new_id()
        #: the DSN, or how to get it once the hub has started its database
        self._dsn = dsn
        self._heartbeat = heartbeat
        self._down_poll = down_poll
        self._pool: asyncpg.Pool[Any] | None = None
        self._local: dict[str, tuple[str, str]] = {}  # sid -> (account, agent)
        self._per_agent: Counter[tuple[str, str]] = Counter()  # local sockets per agent
        self._chosen: dict[tuple[str, str], str] = {}  # statuses set through this process
        self._pending: set[str] = set()
        self._publish_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_logged: OnLogged = lambda _: None
        self._on_offline: OnOffline | None = None
        self.up = False  # listening and in sync
        self._stopping = False

    def _url(self) -> str:
        return self._dsn if isinstance(self._dsn, str) else self._dsn()

    async def start(self, on_logged: OnLogged, on_offline: OnOffline) -> None:
        self._on_logged, self._on_offline = on_logged, on_offline
        # no connection yet (min_size 0): a database that is down at start is waited for below
        self._pool = await asyncpg.create_pool(
            self._url(), min_size=0, max_size=2, command_timeout=10
        )
        self._tasks = [
            asyncio.create_task(self._listen(), name="cluster-listen"),
            asyncio.create_task(self._publish(), name="cluster-publish"),
            asyncio.create_task(self._beat(), name="cluster-heartbeat"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        self._publish_wake.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._pool is None:
            return
        with contextlib.suppress(*_DOWN):  # say goodbye: our sockets are gone with us
            for sid, (account_id, agent_id) in list(self._local.items()):
                await self._disconnect_in_db(self.proc, sid, account_id, agent_id)
            async with self._pool.acquire() as conn:
                await conn.execute("DELETE FROM realtime_procs WHERE proc = $1", self.proc)
        await self._pool.close()
        self._pool = None

    def _db(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise ConnectionError("the cluster is not started")
        return self._pool

    # --- wake-ups ---------------------------------------------------------------------------

    def logged(self, accounts: set[str]) -> None:
        self._on_logged(accounts)  # this process at once; the others through NOTIFY
        self._pending |= accounts
        self._publish_wake.set()

    async def _publish(self) -> None:
        while not self._stopping:
            await self._publish_wake.wait()
            self._publish_wake.clear()
            accounts, self._pending = self._pending, set()
            if not accounts:
                continue
            try:
                async with self._db().acquire() as conn:
                    for notice in _notices(self.proc, accounts):
                        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, notice)
            except _DOWN as exc:  # the listener is down too and wakes everything when back
                log.warning("realtime wake-up not published", extra={"error": repr(exc)})

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        notice = orjson.loads(str(payload))
        if notice.get("from") != self.proc:
            self._on_logged(set(notice.get("accounts", ())))

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

    async def _beat(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._heartbeat)
            try:
                async with self._db().acquire() as conn:
                    await conn.execute(_BEAT, self.proc, self._heartbeat * 3 + 1)
                await self._sweep()
            except _DOWN as exc:
                log.debug("presence heartbeat failed", extra={"error": repr(exc)})

    async def _restore(self) -> None:
        """Make the tables agree with this process's own sockets (after a start or an outage)."""
        async with self._db().acquire() as conn:
            await conn.execute(_BEAT, self.proc, self._heartbeat * 3 + 1)
            recorded = await conn.fetch(
                "SELECT sid, account_id, agent_id FROM realtime_sockets WHERE proc = $1", self.proc
            )
        for sid, account_id, agent_id in recorded:
            if sid not in self._local:
                await self._disconnect_in_db(self.proc, sid, account_id, agent_id)
        for sid, (account_id, agent_id) in list(self._local.items()):
            await self._connect_in_db(sid, account_id, agent_id)
        for (account_id, agent_id), status in list(self._chosen.items()):
            await self._set_in_db(account_id, agent_id, status)

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

    async def _connect_in_db(self, sid: str, account_id: str, agent_id: str) -> bool:
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

    async def _disconnect_in_db(self, proc: str, sid: str, account_id: str, agent_id: str) -> bool:
        async with self._db().acquire() as conn, conn.transaction():
            await conn.execute(_LOCK, _LOCK_CLASS, account_id, agent_id)
            removed = await conn.fetchval(
                "DELETE FROM realtime_sockets WHERE proc = $1 AND sid = $2 RETURNING 1", proc, sid
            )
            if removed and not await conn.fetchval(_AGENT_SOCKETS, account_id, agent_id):
                await conn.execute(_FORGET_AGENT, account_id, agent_id)
                return True
            return False

    async def _set_in_db(self, account_id: str, agent_id: str, status: str) -> bool:
        async with self._db().acquire() as conn, conn.transaction():
            await conn.execute(_LOCK, _LOCK_CLASS, account_id, agent_id)
            if not await conn.fetchval(_AGENT_SOCKETS, account_id, agent_id):
                return False
            await conn.execute(_SET_STATUS, account_id, agent_id, status)
            return True

    def _local_sockets(self, account_id: str, agent_id: str) -> int:
        return self._per_agent.get((account_id, agent_id), 0)

    async def connected(self, account_id: str, agent_id: str, sid: str) -> bool:
        self._local[sid] = (account_id, agent_id)
        self._per_agent[(account_id, agent_id)] += 1
        try:
            return await self._connect_in_db(sid, account_id, agent_id)
        except _DOWN as exc:
            log.warning("presence not recorded in the database", extra={"error": repr(exc)})
            return self._local_sockets(account_id, agent_id) == 1

    async def disconnected(self, account_id: str, agent_id: str, sid: str) -> bool:
        if self._local.pop(sid, None) is None:
            return False
        self._per_agent[(account_id, agent_id)] -= 1
        if not self._local_sockets(account_id, agent_id):
            del self._per_agent[(account_id, agent_id)]
            self._chosen.pop((account_id, agent_id), None)
        try:
            return await self._disconnect_in_db(self.proc, sid, account_id, agent_id)
        except _DOWN as exc:
            log.warning("presence not recorded in the database", extra={"error": repr(exc)})
            return not self._local_sockets(account_id, agent_id)

    async def set_status(self, account_id: str, agent_id: str, status: str) -> bool:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if self._local_sockets(account_id, agent_id):
            self._chosen[(account_id, agent_id)] = status
        try:
            return await self._set_in_db(account_id, agent_id, status)
        except _DOWN as exc:
            log.warning("presence not recorded in the database", extra={"error": repr(exc)})
            return (account_id, agent_id) in self._chosen

    async def status(self, account_id: str, agent_id: str) -> str:
        try:
            value = await self._db().fetchval(
                "SELECT status FROM realtime_presence WHERE account_id = $1 AND agent_id = $2",
                account_id,
                agent_id,
            )
        except _DOWN:
            value = self._local_view(account_id).get(agent_id)
        return str(value) if value else "offline"

    async def of_account(self, account_id: str) -> dict[str, str]:
        try:
            rows = await self._db().fetch(
                "SELECT agent_id, status FROM realtime_presence WHERE account_id = $1"
                " ORDER BY agent_id",
                account_id,
            )
            found = {r["agent_id"]: r["status"] for r in rows}
        except _DOWN:
            found = self._local_view(account_id)
        return dict(sorted(found.items()))

    def _local_view(self, account_id: str) -> dict[str, str]:
        """What this process alone knows, while the database is unreachable."""
        return {
            agent_id: self._chosen.get((account_id, agent_id), "online")
            for owner_account, agent_id in self._per_agent
            if owner_account == account_id
        }
