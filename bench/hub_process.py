"""`hub serve` as a subprocess on a fresh embedded data directory, for the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from hub.store.embedded import stop_embedded_postgres
from tests.support.processes import free_port as free_port  # re-exported for the benchmarks


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a hub so far (from /proc), for cost-per-message figures: the process,
    its live child processes (the worker child of ``HUB_WORKER_PROCESSES``) and the children it
    reaped (a worker that was restarted)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def until_quiet(pid: int, share: float = 0.1, within: float = 60) -> float:
    """Wait until the hub (``pid`` and its worker child) used under ``share`` of a core for a
    whole second, at most ``within`` seconds; return the seconds waited. Ready is not idle: a
    hub that has just answered ``/readyz`` may still be loading its AI models, and a benchmark
    that counts CPU per request would count that work as the requests'."""
    started = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - started < within:
        time.sleep(1)
        now = cpu_seconds(pid)
        if now - last < share:
            break
        last = now
    return time.monotonic() - started


def wait_ready(url: str, proc: subprocess.Popen[Any], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready")


@dataclasses.dataclass(frozen=True)
class RunningHub:
    url: str  # base URL with a trailing slash
    pid: int
    data_dir: Path
    inbox: dict[str, Any]  # an API-channel inbox: id, signing_secret, ...
    token: str  # accepted as an administrator's bearer token
    split: bool = False  # a gateway with a worker child (``HUB_WORKER_PROCESSES``)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}webhooks/api/{self.inbox['id']}"


def wait_whole_hub(url: str, proc: subprocess.Popen[Any], seconds: float = 60) -> bool:
    """Until ``/readyz`` answers ready, which in the split layout (``HUB_WORKER_PROCESSES``)
    waits for the worker child too: the measurement starts with every process up. Whether the
    hub runs split."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return "worker_process" in json.loads(response.read())["checks"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise SystemExit("the hub did not become ready")


def layout_env(worker_processes: int | None) -> dict[str, str]:
    """``HUB_WORKER_PROCESSES`` for :func:`running_hub` (``None``: the hub's own default)."""
    return {"HUB_WORKER_PROCESSES": "" if worker_processes is None else str(worker_processes)}


@contextmanager
def running_hub(
    prefix: str,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    prepare: Callable[[Path], None] | None = None,
) -> Iterator[RunningHub]:
    """Start the embedded default with an API inbox; stop it and its PostgreSQL afterwards.
    ``prepare`` gets the hub's data directory before the hub starts."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    if prepare is not None:
        prepare(work / "data")
    port = free_port()
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(work / "data"),
        "HUB_PORT": str(port),
        "HUB_ACCESS_LOG": "0",
        "HUB_LOG_LEVEL": "warning",
        # load generators open thousands of connections from one loopback address
        "HUB_MAX_CONNECTIONS_PER_ADDRESS": "0",
    }
    env.pop("DATABASE_URL", None)
    hub_bin = str(Path(sys.executable).parent / "hub")
    # serve first: the two CLI commands then share its PostgreSQL (the embedded server is reused
    # while a process holds it) instead of each starting and stopping one, which made every
    # benchmark's start several seconds longer
    # one process unless the benchmark asks for a layout ("" for the hub's own default)
    extra_env = {"HUB_WORKER_PROCESSES": "0", **(extra_env or {})}
    proc = subprocess.Popen([hub_bin, "serve", *extra_args], env={**env, **extra_env})
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
        commands = {
            "inbox": [hub_bin, "inbox", "create", "--channel", "api", "--name", "bench"],
            "token": [hub_bin, "token", "create", "--name", "bench", "--role", "administrator"],
        }
        running = {
            name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for name, cmd in commands.items()
        }
        out: dict[str, Any] = {}
        for name, cli in running.items():
            stdout, stderr = cli.communicate(timeout=120)
            if cli.returncode != 0:
                raise SystemExit(f"hub {name} create failed: {stderr.decode()[-2000:]}")
            out[name] = json.loads(stdout)
        split = wait_whole_hub(f"http://127.0.0.1:{port}/readyz", proc)
        if split:
            print("== hub split: gateway and a ready worker child process", flush=True)
        url = f"http://127.0.0.1:{port}/"
        yield RunningHub(url, proc.pid, work / "data", out["inbox"], out["token"]["token"], split)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stop_embedded_postgres(work / "data")
        shutil.rmtree(work, ignore_errors=True)


async def settled(base: str, pool: asyncpg.Pool[Any]) -> bool:
    """The outbox is empty and no consumer group has a record left (``/readyz``'s bus lag)."""
    if await pool.fetchval("SELECT count(*) FROM outbox"):
        return False
    return await asyncio.to_thread(_no_bus_lag, base)


def metric_samples(base: str) -> dict[str, list[Sample]]:
    """The hub's ``/metrics`` now, the samples of each metric family by the family's name
    (blocking: call it in a thread from a loop)."""
    with urllib.request.urlopen(f"{base}metrics", timeout=10) as response:
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _no_bus_lag(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}readyz", timeout=10) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:  # 503 while something is not ready: its checks too
        body = exc.read()
    return int(json.loads(body).get("checks", {}).get("bus_lag", 0)) == 0


async def transactions(pool: asyncpg.Pool[Any]) -> int:
    """Transactions PostgreSQL committed in the hub's database so far."""
    n: int = await pool.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    return n


async def until_settled(base: str, pool: asyncpg.Pool[Any], within: float = 600) -> float:
    """Wait until the hub has caught up (:func:`settled`); the seconds it took."""
    began = time.monotonic()
    async with asyncio.timeout(within):
        while not await settled(base, pool):
            await asyncio.sleep(0.5)
    return round(time.monotonic() - began, 1)
