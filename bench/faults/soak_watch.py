"""What the soak samples besides the hub itself, so that a slow window can be explained: the
machine (CPU and IO pressure from ``/proc/pressure``), the CPU used by the hub, by PostgreSQL and
by the soak's own process (its event-loop lag too: a load generator that falls behind inflates the
latency it measures), the data disk's own latency per read and write (``/proc/diskstats``: a disk
that stalls by itself looks different from one the load saturates), and PostgreSQL's side (what
its client backends wait on, sampled every 100 ms; autovacuum workers and checkpoints; WAL volume
and fsync time). PostgreSQL is also told to log checkpoints, autovacuum runs and statements slower
than 200 ms to its own log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.hub_process import cpu_seconds as with_children
from hub.store.embedded import apply_server_settings

_LOGGING = {
    "log_min_duration_statement": "200ms",
    "log_checkpoints": "on",
    "log_autovacuum_min_duration": "0",
    "log_lock_waits": "on",
    "deadlock_timeout": "200ms",
    "track_io_timing": "on",
    "track_wal_io_timing": "on",
}


#: background processes whose non-idle waits are counted (checkpoint writes, WAL flushes)
_BACKGROUND = ("checkpointer", "walwriter", "background writer")


def pressure(kind: str) -> float:
    """Microseconds some task stalled on ``kind`` (io, cpu) since boot; 0 where PSI is absent."""
    try:
        first = Path(f"/proc/pressure/{kind}").read_text().splitlines()[0]
    except OSError:
        return 0.0
    return float(first.rsplit("total=", 1)[1])


def disk_counters(path: Path) -> dict[str, float]:
    """/proc/diskstats of the disk that holds ``path``: reads, writes, their milliseconds, bytes
    written. The disk's own latency tells its stalls apart from the load's."""
    dev = os.stat(path).st_dev
    wanted = (os.major(dev), os.minor(dev))
    try:
        lines = Path("/proc/diskstats").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        f = line.split()
        if (int(f[0]), int(f[1])) == wanted or (wanted[1] == 0 and int(f[0]) == wanted[0]):
            return {"reads": float(f[3]), "read_ms": float(f[6]), "writes": float(f[7]),
                    "written": float(f[9]) * 512, "write_ms": float(f[10])}  # fmt: skip
    return {}


def _per(d: dict[str, float], total: str, count: str) -> float:
    return round(d.get(total, 0.0) / max(d.get(count, 0.0), 1.0), 2)


def cpu_seconds(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system


def hub_cpu_seconds(pid: int) -> float:
    """The hub's CPU with its worker child's (the split layout), 0 once it is gone."""
    try:
        return with_children(pid)
    except (OSError, psutil.Error):
        return 0.0


class LoopLag:
    """The largest delay of a 50 ms timer in this process since the last ``take()``."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, time.monotonic() - before - 0.05)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class Watch:
    """Samples per window; ``take()`` returns the window's figures and starts the next."""

    def __init__(self, dsn: str, hub_pid: int, pgdata: Path) -> None:
        self.dsn = dsn
        self.hub_pid = hub_pid
        self.pgdata = pgdata
        self.pg_pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        self.loop = LoopLag()
        self.waits: Counter[str] = Counter()  # client backends' wait events, 100 ms samples
        self.queries: Counter[str] = Counter()  # and the statements they were running
        self.polls = 0
        self.vacuumed: set[str] = set()
        self.background: Counter[str] = Counter()
        self._conn: asyncpg.Connection[Any] | None = None
        self._busy = asyncio.Lock()  # one statement at a time on the connection
        self._task: asyncio.Task[None] | None = None
        self._last: dict[str, float] = {}
        self._pg_seen: dict[int, float] = {}  # server process -> CPU seconds when last seen

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self.dsn)
        await apply_server_settings(self._conn, _LOGGING)
        self._last = await self._counters()
        self.loop.start()
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        assert self._conn is not None
        while True:
            async with self._busy:
                rows = await self._conn.fetch(
                    "SELECT backend_type, coalesce(wait_event_type || ':' || wait_event, 'CPU')"
                    " AS w, left(query, 90) AS q FROM pg_stat_activity"
                    " WHERE pid <> pg_backend_pid() AND (state = 'active' OR"
                    " backend_type NOT IN ('client backend'))"
                )
            self.polls += 1
            for row in rows:
                kind = row["backend_type"]
                if kind == "client backend":
                    self.waits[row["w"]] += 1
                    self.queries[" ".join((row["q"] or "").split())] += 1
                elif kind == "autovacuum worker" and row["q"]:
                    self.vacuumed.add(row["q"].removeprefix("autovacuum: "))
                elif kind in _BACKGROUND and not row["w"].startswith("Activity:"):
                    self.background[f"{kind}={row['w']}"] += 1
            await asyncio.sleep(0.1)

    def _pg_cpu(self) -> float:
        """CPU seconds of the server's processes so far, counting exited ones (autovacuum
        workers come and go) at what they had used when last seen."""
        try:
            postmaster = psutil.Process(self.pg_pid)
            procs = [postmaster, *postmaster.children(recursive=True)]
        except psutil.Error:
            return sum(self._pg_seen.values())
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                self._pg_seen[p.pid] = t.user + t.system
        return sum(self._pg_seen.values())

    async def _counters(self) -> dict[str, float]:
        assert self._conn is not None
        cp = await self._conn.fetchrow(
            "SELECT num_timed + num_requested AS checkpoints, buffers_written,"
            " write_time, sync_time FROM pg_stat_checkpointer"
        )
        walstat = await self._conn.fetchrow("SELECT wal_bytes, wal_fpi FROM pg_stat_wal")
        wal = await self._conn.fetchrow(
            "SELECT coalesce(sum(fsyncs), 0) AS fsyncs, coalesce(sum(fsync_time), 0) AS fsync_ms,"
            " coalesce(sum(write_time), 0) AS write_ms FROM pg_stat_io WHERE object = 'wal'"
        )
        assert cp is not None and wal is not None and walstat is not None
        return {
            "checkpoints": float(cp["checkpoints"]),
            "cp_buffers": float(cp["buffers_written"]),
            "cp_write_ms": float(cp["write_time"]),
            "cp_sync_ms": float(cp["sync_time"]),
            "wal_bytes": float(walstat["wal_bytes"]),
            "wal_fpi": float(walstat["wal_fpi"]),
            "wal_fsyncs": float(wal["fsyncs"]),
            "wal_fsync_ms": float(wal["fsync_ms"]),
            "wal_write_ms": float(wal["write_ms"]),
            "io_stall_us": pressure("io"),
            "cpu_stall_us": pressure("cpu"),
            **{f"disk_{k}": v for k, v in disk_counters(self.pgdata).items()},
            "hub_cpu_s": hub_cpu_seconds(self.hub_pid),  # with its worker child
            "pg_cpu_s": self._pg_cpu(),
            "soak_cpu_s": cpu_seconds(os.getpid()),
            "at": time.monotonic(),
        }

    async def take(self) -> dict[str, Any]:
        async with self._busy:
            now = await self._counters()
        d = {k: now[k] - self._last.get(k, now[k]) for k in now}
        self._last = now
        span = max(d["at"], 1e-9)
        polls = max(self.polls, 1)
        out: dict[str, Any] = {
            "io_pressure": round(d["io_stall_us"] / 1e6 / span, 3),
            "cpu_pressure": round(d["cpu_stall_us"] / 1e6 / span, 3),
            "hub_cpu": round(d["hub_cpu_s"] / span, 3),
            "pg_cpu": round(d["pg_cpu_s"] / span, 3),
            "soak_cpu": round(d["soak_cpu_s"] / span, 3),
            "soak_loop_lag_ms": round(self.loop.take() * 1000, 1),
            "checkpoints": int(d["checkpoints"]),
            "cp_buffers": int(d["cp_buffers"]),
            "cp_sync_ms": round(d["cp_sync_ms"]),
            "wal_mib": round(d["wal_bytes"] / 2**20, 1),
            "wal_fpi": int(d["wal_fpi"]),
            "wal_fsyncs": int(d["wal_fsyncs"]),
            "wal_fsync_ms": round(d["wal_fsync_ms"]),
            "disk_write_mib_s": round(d.get("disk_written", 0) / 2**20 / span, 1),
            "disk_ms_per_write": round(
                d.get("disk_write_ms", 0) / max(d.get("disk_writes", 0), 1), 2
            ),
            "disk_ms_per_read": round(d.get("disk_read_ms", 0) / max(d.get("disk_reads", 0), 1), 2),
            "pg_waits": {k: round(v / polls, 2) for k, v in self.waits.most_common(4)},
            "pg_background": dict(self.background.most_common(3)),
            "pg_queries": {k: round(v / polls, 2) for k, v in self.queries.most_common(3)},
            "autovacuum": sorted(self.vacuumed),
        }
        self.waits.clear()
        self.queries.clear()
        self.background.clear()
        self.vacuumed.clear()
        self.polls = 0
        return out

    async def stop(self) -> None:
        self.loop.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()
