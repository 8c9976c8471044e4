"""Running ``hub serve`` as a real subprocess, for the crash and multi-process tests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
            [sys.executable, "-m", "hub.cli", "serve"], env=env, stdout=out, stderr=out
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
        [sys.executable, "-m", "hub.cli", *args], env=env, capture_output=True, check=True
    )
    made: dict[str, Any] = json.loads(done.stdout)
    return made
