"""Running ``hub serve`` as a real subprocess, for the crash and multi-process tests."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

# Below the kernel's ephemeral range (32768-60999 here): a port asked of the kernel with bind(0)
# comes from the range outgoing connections use too, so another process's client socket could
# take it between this check and the server's bind ("address already in use").
_PORTS = range(20_000, 32_000)


def free_port() -> int:
    """A port nothing listens on now, outside the range client sockets are given."""
    for _ in range(200):
        port = random.choice(_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free port found")


def hub_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        HUB_DATA_DIR=str(data_dir), HUB_PORT=str(port), HUB_ACCESS_LOG="0", HUB_LOG_LEVEL="warning"
    )
    env.update(extra)
    return env


def start_hub(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"], env=env, stdout=out, stderr=out
        )


async def wait_healthy(
    session: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    async with asyncio.timeout(60):
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"hub exited early:\n{log.read_text()[-3000:]}")
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


def hub_cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run a ``hub`` set-up command (``inbox create``, ``token create``) and return its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args], env=env, capture_output=True, check=True
    )
    made: dict[str, Any] = json.loads(done.stdout)
    return made


#: runs each command's argument list (a JSON list on stdin) through the ``hub`` CLI's own entry
#: point in one process, and prints their JSON outputs as a JSON list
_BATCH = """
import contextlib, io, json, sys
from server.cli import main
outputs = []
for argv in json.load(sys.stdin):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    if status:
        sys.exit(f"hub {' '.join(argv)}: exit status {status}")
    outputs.append(json.loads(out.getvalue()))
print(json.dumps(outputs))
"""


def hub_cli_many(env: dict[str, str], *commands: list[str]) -> list[dict[str, Any]]:
    """Several ``hub`` set-up commands, in order, in one process: each is what ``hub_cli`` runs,
    without starting Python and importing the hub again for every one (seconds each)."""
    done = subprocess.run(
        [sys.executable, "-c", _BATCH],
        env=env,
        input=json.dumps(commands).encode(),
        capture_output=True,
    )
    if done.returncode != 0:
        argv = [sys.executable, "-c", "<hub commands>", *(" ".join(c) for c in commands)]
        raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
    made: list[dict[str, Any]] = json.loads(done.stdout)
    return made
