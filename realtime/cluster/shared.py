"""What the Redis and the PostgreSQL cluster backends share: this process's own sockets and the
statuses chosen through it (written back into the store after an outage, and answered from while
the store is unreachable), the publisher of the notices (the rows just logged, and wake-ups:
realtime/cluster/notices.py) and the heartbeat loop. A backend says how its store records
sockets and statuses and carries the notices."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from typing import ClassVar

from hub.ids import new_id
from realtime.cluster import notices
from realtime.cluster.contract import STATUSES, OnCommitted, OnLogged, OnOffline
from realtime.log import Logged

log = logging.getLogger(__name__)


class SharedCluster(ABC):
    #: how log lines name the store ("redis", "the database")
    store: ClassVar[str]
    #: the errors that mean the store is unreachable (answered from this process's own view)
    down: ClassVar[tuple[type[BaseException], ...]]
    #: the largest notice the store carries, in bytes
    payload_max: ClassVar[int]

    def __init__(self, *, heartbeat: float, down_poll: float) -> None:
        self.proc = new_id()
        self._heartbeat = heartbeat
        self._down_poll = down_poll
        self._local: dict[str, tuple[str, str]] = {}  # sid -> (account, agent)
        self._per_agent: Counter[tuple[str, str]] = Counter()  # local sockets per agent
        self._chosen: dict[tuple[str, str], str] = {}  # statuses set through this process
        self._pending: set[str] = set()  # accounts to wake
        self._pending_rows: list[Logged] = []  # commits to hand over, in commit order
        self._publish_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_logged: OnLogged = lambda _: None
        self._on_committed: OnCommitted = lambda _: None
        self._on_offline: OnOffline | None = None
        self.up = False  # listening and in sync
        self._stopping = False

    # --- what a backend's store does ----------------------------------------------------------

    @abstractmethod
    async def _send(self, notices: list[bytes]) -> None:
        """Send the other processes these notices, in this order."""

    @abstractmethod
    async def _keep_alive(self) -> None:
        """This process's heartbeat in the store."""

    @abstractmethod
    async def _sweep(self) -> None:
        """Remove the sockets of processes whose heartbeat expired, announcing who went offline."""

    @abstractmethod
    async def _store_connect(self, sid: str, account_id: str, agent_id: str) -> bool:
        """Record a socket; True if its agent just came online."""

    @abstractmethod
    async def _store_disconnect(self, proc: str, sid: str, account_id: str, agent_id: str) -> bool:
        """Forget a socket; True if its agent just went offline."""

    @abstractmethod
    async def _store_set(self, account_id: str, agent_id: str, status: str) -> bool:
        """Set a status of an agent with sockets; False if it has none."""

    @abstractmethod
    async def _store_status(self, account_id: str, agent_id: str) -> str | None: ...

    @abstractmethod
    async def _store_of_account(self, account_id: str) -> dict[str, str]: ...

    # --- wake-ups ---------------------------------------------------------------------------

    def _start_loops(self, listen: asyncio.Task[None]) -> None:
        self._tasks = [
            listen,
            asyncio.create_task(self._publish(), name="cluster-publish"),
            asyncio.create_task(self._beat(), name="cluster-heartbeat"),
        ]

    async def _stop_loops(self) -> None:
        # the flag as well as cancel(): a cancellation that lands inside a client library can be
        # swallowed by its timeout handling, and stop must not wait on a loop that goes on
        self._stopping = True
        self._publish_wake.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def committed(self, logged: Logged) -> None:
        self._on_committed(logged)  # this process at once; the others through the store
        self._pending_rows.append(logged)
        self._publish_wake.set()

    def logged(self, accounts: set[str]) -> None:
        self._on_logged(accounts)  # this process at once; the others through the store
        self._pending |= accounts
        self._publish_wake.set()

    async def _publish(self) -> None:
        """Everything pending goes in one send: the commits that queued while the last send
        was on its way share its notices, in commit order."""
        while not self._stopping:
            await self._publish_wake.wait()
            self._publish_wake.clear()
            accounts, self._pending = self._pending, set()
            commits, self._pending_rows = self._pending_rows, []
            if not accounts and not commits:
                continue
            try:
                await self._send(notices.encode(self.proc, commits, accounts, self.payload_max))
            except self.down as exc:
                # sent again as wake-ups (small, and the streams read the log) once the store
                # answers: a listener that stayed up would otherwise not hear of these rows
                log.warning("realtime notices not published", extra={"error": repr(exc)})
                self._pending |= accounts.union(*commits)
                await asyncio.sleep(self._down_poll)
                self._publish_wake.set()

    def _heard(self, payload: str | bytes) -> None:
        """A notice from another process: its rows to the streams, its wake-ups to the others."""
        if notices.sent_by(self.proc, payload):
            return
        _, rows, wake = notices.decode(payload)
        if rows:
            self._on_committed(rows)
        if wake:
            self._on_logged(wake)

    # --- presence -----------------------------------------------------------------------------

    async def _beat(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._keep_alive()
                await self._sweep()
            except self.down as exc:
                log.debug("presence heartbeat failed", extra={"error": repr(exc)})

    async def _write_back(self, recorded: Iterable[tuple[str, str, str]]) -> None:
        """Make the store agree with this process's own sockets and chosen statuses (after a
        start or an outage); ``recorded``: (sid, account, agent) the store holds for it."""
        for sid, account_id, agent_id in recorded:
            if sid not in self._local:
                await self._store_disconnect(self.proc, sid, account_id, agent_id)
        for sid, (account_id, agent_id) in list(self._local.items()):
            await self._store_connect(sid, account_id, agent_id)
        for (account_id, agent_id), status in list(self._chosen.items()):
            await self._store_set(account_id, agent_id, status)

    def _local_sockets(self, account_id: str, agent_id: str) -> int:
        return self._per_agent.get((account_id, agent_id), 0)

    def _unrecorded(self, exc: BaseException) -> None:
        log.warning(f"presence not recorded in {self.store}", extra={"error": repr(exc)})

    async def connected(self, account_id: str, agent_id: str, sid: str) -> bool:
        self._local[sid] = (account_id, agent_id)
        self._per_agent[(account_id, agent_id)] += 1
        try:
            return await self._store_connect(sid, account_id, agent_id)
        except self.down as exc:
            self._unrecorded(exc)
            return self._local_sockets(account_id, agent_id) == 1

    async def disconnected(self, account_id: str, agent_id: str, sid: str) -> bool:
        if self._local.pop(sid, None) is None:
            return False
        self._per_agent[(account_id, agent_id)] -= 1
        if not self._local_sockets(account_id, agent_id):
            del self._per_agent[(account_id, agent_id)]
            self._chosen.pop((account_id, agent_id), None)
        try:
            return await self._store_disconnect(self.proc, sid, account_id, agent_id)
        except self.down as exc:
            self._unrecorded(exc)
            return not self._local_sockets(account_id, agent_id)

    async def set_status(self, account_id: str, agent_id: str, status: str) -> bool:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if self._local_sockets(account_id, agent_id):
            self._chosen[(account_id, agent_id)] = status
        try:
            return await self._store_set(account_id, agent_id, status)
        except self.down as exc:
            self._unrecorded(exc)
            return (account_id, agent_id) in self._chosen

    async def status(self, account_id: str, agent_id: str) -> str:
        try:
            value = await self._store_status(account_id, agent_id)
        except self.down:
            value = self._local_view(account_id).get(agent_id)
        return value or "offline"

    async def of_account(self, account_id: str) -> dict[str, str]:
        try:
            found = await self._store_of_account(account_id)
        except self.down:
            found = self._local_view(account_id)
        return dict(sorted(found.items()))

    def _local_view(self, account_id: str) -> dict[str, str]:
        """What this process alone knows, while the store is unreachable."""
        return {
            agent_id: self._chosen.get((account_id, agent_id), "online")
            for owner_account, agent_id in self._per_agent
            if owner_account == account_id
        }
