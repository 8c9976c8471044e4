"""A real MongoDB-wire server for the archive tests: FerretDB 1.24 with its SQLite backend on a
free loopback port, which tests can stop and start again (an outage).

The binary is built by scripts/test (``go install`` of tests/support/ferretdb, which embeds
FerretDB v1.24.2) into ``.artefacts/bin``; ``FERRETDB_BIN`` names another one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / ".artefacts" / "bin" / "ferretdb"


def ferretdb_binary() -> str:
    """Not a ``ferretdb`` on PATH: one from ``go install .../cmd/ferretdb@v1.24.x`` panics at
    start (see tests/support/ferretdb/main.go)."""
    wanted = os.environ.get("FERRETDB_BIN")
    if wanted:
        return wanted
    if not BUILT.exists():
        raise RuntimeError(
            "ferretdb not built: scripts/test builds it (cd tests/support/ferretdb && "
            "GOBIN=$PWD/../../../.artefacts/bin go install .)"
        )
    return str(BUILT)


class FerretDBServer:
    def __init__(self, workdir: Path) -> None:
        self._binary = ferretdb_binary()
        self._workdir = workdir
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?serverSelectionTimeoutMS=1000"

    def start(self) -> None:
        data = self._workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        log = (self._workdir / "ferretdb.log").open("ab")
        self._proc = subprocess.Popen(
            [
                self._binary,
                f"--listen-addr=127.0.0.1:{self.port}",
                "--handler=sqlite",
                f"--sqlite-url=file:{data}/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"ferretdb exited with {self._proc.returncode}: see {self._workdir}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("ferretdb did not listen within 30 s")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None
