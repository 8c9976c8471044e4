"""``HUB_WORKER_PROCESSES=1``: role ``all`` split in two processes on one machine.

The process the operator started runs as the gateway (HTTP, agent sockets, ingest); this part
starts the worker role (outbox relay, bus, every consumer) as its child, on the database the parent
already opened (the embedded PostgreSQL is the parent's: the child is handed its URL and starts
none), so the consumers no longer take the event loop that takes the webhooks. Presence and the
"replay log grew" wake-ups go between the two through PostgreSQL (``realtime.cluster.postgres``)
unless ``REDIS_URL`` is set.

The child gets the parent's effective settings through its environment, listens for its
operations endpoints (``/readyz``, ``/metrics``) on a loopback port, and is told by the kernel to
stop if the parent dies without cleaning up (``PR_SET_PDEATHSIG``): never an orphan. If it dies it
is started again (logged, with a growing pause if it keeps dying); the parent's ``/readyz``
reports it. At shutdown it is stopped after the parent's ingest, so it publishes what was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from hub.app import Hub
from hub.config import SETTINGS, Config
from hub.contracts.part import Layer

log = logging.getLogger(__name__)

#: how long a stopping child may take to drain the outbox before it is killed
STOP_WITHIN_S = 30.0
PROBE_EVERY_S = 2.0
#: a child that lived shorter than this before dying is restarted after a growing pause
QUICK_DEATH_S = 10.0
_PR_SET_PDEATHSIG = 1
#: set in the child's environment (the parent's pid): the child knows it is the split's worker
WORKER_OF = "HUB_WORKER_OF"


def _prepare_child() -> None:  # pragma: no cover - runs in the forked child before exec
    """Ask the kernel for SIGTERM when the parent goes, however it goes (Linux), and leave the
    parent's process group: a terminal's Ctrl-C then stops the parent only, which stops the child
    after its own ingest (the child would otherwise stop first, and be started again)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgid(0, 0)


#: the cgroup v2 CPU quota of this process's cgroup ("max 100000", or "150000 100000": 1.5 CPUs)
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path = CPU_MAX) -> float:
    """The CPUs this process may run on: its affinity, capped by a cgroup v2 quota (a container
    started with ``--cpus 1`` on a larger host)."""
    cpus: float = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, int(quota) / int(period))
    return cpus


def decided(config: Config) -> Config:
    """The layout ``hub serve`` runs: an unset ``worker_processes`` splits role ``all`` in two
    where two CPUs are there to share (the split had the lower socket latency in every
    60-second pair of BENCHMARKS.md, for about 10% more CPU and 90 MB more memory), and keeps one
    process on a single CPU, where a second process only adds the hop between them."""
    split = config.worker_processes
    if split is None:
        split = 1 if config.role == "all" and usable_cpus() >= 2 else 0
    return config.replace(worker_processes=split)


def child_env(config: Config, dsn: str, port: int) -> dict[str, str]:
    """The child's environment: this process's, with the parent's effective settings (from the
    environment, a TOML file or the command line alike) and the worker's own."""
    env = dict(os.environ)
    for setting in SETTINGS:
        value = getattr(config, setting.name)
        if value is None:
            env.pop(setting.env, None)
        elif isinstance(value, bool):
            env[setting.env] = "true" if value else "false"
        else:
            env[setting.env] = str(value)
    env.update(
        HUB_ROLE="worker",
        HUB_WORKER_PROCESSES="0",
        DATABASE_URL=dsn,
        HUB_HOST="127.0.0.1",
        HUB_PORT=str(port),
        HUB_METRICS_PORT="0",
        HUB_ACCESS_LOG="false",  # its only callers are the parent's probes
    )
    env[WORKER_OF] = str(os.getpid())
    return env


class WorkerProcess:
    """The part that keeps the worker child running (in the parent, role ``gateway``)."""

    name = "worker_process"
    layer: Layer = "shared"
    roles = frozenset({"gateway"})

    def __init__(self, port: int) -> None:
        #: the child's loopback port for its operations endpoints
        self.port = port
        self.pid: int | None = None
        self.restarts = 0
        self.state = "off"
        self._child_checks: dict[str, Any] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, hub: Hub) -> None:
        if not hub.config.worker_processes:
            return
        env = child_env(hub.config, hub.dsn, self.port)
        self.state = "starting"  # not ready before the child is
        self._tasks = [
            asyncio.create_task(self._supervise(env), name="worker-process"),
            asyncio.create_task(self._probe(), name="worker-process-probe"),
        ]

    async def _spawn(self, env: dict[str, str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            env=env,
            cwd=str(Path.cwd()),
            preexec_fn=_prepare_child,
        )

    async def _supervise(self, env: dict[str, str]) -> None:
        pause = 1.0
        while not self._stopping:
            started = time.monotonic()
            self.state = "starting"
            self._child_checks = {}
            try:
                self._proc = await self._spawn(env)
            except OSError:
                log.exception("worker process could not be started; trying again")
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
                continue
            self.pid = self._proc.pid
            log.info("worker process started", extra={"pid": self.pid})
            code = await self._proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            self.state = f"exited ({code}); restarting"
            quick = time.monotonic() - started < QUICK_DEATH_S
            pause = min(pause * 2, 30.0) if quick else 1.0
            log.error(
                "worker process exited; starting it again",
                extra={"pid": self.pid, "returncode": code, "restart_in_s": pause},
            )
            await asyncio.sleep(pause)

    async def _probe(self) -> None:
        """Keep the child's own readiness for this process's ``/readyz``."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        timeout = aiohttp.ClientTimeout(total=PROBE_EVERY_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping:
                try:
                    async with session.get(url) as response:
                        body = await response.json()
                    self._child_checks = dict(body.get("checks", {}))
                    if self._proc is not None and self._proc.returncode is None:
                        self.state = "ready" if body.get("ready") else "not ready"
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    self._child_checks = {}
                await asyncio.sleep(PROBE_EVERY_S if self.state == "ready" else 0.2)

    async def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_WITHIN_S)
            except TimeoutError:
                log.error("worker process did not stop in time; killed", extra={"pid": proc.pid})
                proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.pid is not None:
            self.state = "stopped"

    def child_checks(self) -> Mapping[str, Any]:
        """The child's own checks as its last probe saw them, for the gateway's ``/readyz``."""
        return {k: v for k, v in self._child_checks.items() if k not in ("database", "role")}

    def health(self) -> Mapping[str, Any]:
        if self.pid is None and self.state == "off":
            return {}
        child = self._child_checks
        return {
            "worker_process": {
                "state": self.state,
                "pid": self.pid,
                "port": self.port,  # its /readyz and /metrics, on 127.0.0.1
                "restarts": self.restarts,
                **{k: child[k] for k in ("bus", "outbox_relay", "bus_lag") if k in child},
            }
        }
