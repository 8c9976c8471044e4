"""A real Apache Kafka (KRaft, one node) on free loopback ports, which tests can stop and restart.

It is started by ``scripts/kafka``, the same script developers use, so tests run the broker and
configuration the project documents. The data directory outlives :meth:`KafkaServer.stop` and
:meth:`KafkaServer.kill`: a restart resumes the same cluster with its topics and group offsets.
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from tests.support.processes import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0

_installed = False


def install_kafka() -> None:
    """Fetch the jars from Maven Central once per test process (the script is quick after that)."""
    global _installed
    if _installed:
        return
    result = subprocess.run(
        [str(SCRIPT), "install"], stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise RuntimeError(f"scripts/kafka install failed:\n{output[-3000:]}")
    _installed = True


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("kafka closed the connection")
        data += chunk
    return data


def broker_count(port: int, timeout: float = 2.0) -> int:
    """Brokers listed by a Metadata (v1) request to ``127.0.0.1:port``.

    A KRaft broker lists itself only once it has registered with the controller and been
    unfenced, so a count above zero means clients can produce and consume. Plain socket code, so
    the check needs no Kafka client library.
    """
    client_id = b"hub-tests"
    request = struct.pack(">hhih", 3, 1, 1, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(conn, 4))
        response = _recv_exact(conn, size)
    _correlation_id, brokers = struct.unpack_from(">ii", response)
    count: int = brokers
    return count


class KafkaServer:
    """One broker whose data lives in ``workdir/data``; its script output goes to
    ``workdir/kafka.log`` and the broker's own log to ``workdir/data/server.log``."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self.data_dir = workdir / "data"
        self.log = workdir / "kafka.log"
        self.port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker (formatting the data directory the first time) and wait until ready."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("kafka is already running")
        install_kafka()
        self._workdir.mkdir(parents=True, exist_ok=True)
        command = [
            str(SCRIPT),
            "start",
            str(self.data_dir),
            str(self.port),
            str(self.controller_port),
        ]
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"kafka exited with {code}:\n{self.log_tail()}")
            try:
                if broker_count(self.port) > 0:
                    return
            except (OSError, struct.error):
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(
            f"kafka did not become ready within {READY_TIMEOUT:.0f} s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut down cleanly (SIGTERM), as an operator would; SIGKILL if that takes too long."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL, like a crashed process: the next start recovers the logs and, ~3 s later, once
        the controller has expired the old broker's session, registers it again."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop, then start on the same data directory and ports: topics and offsets are kept."""
        self.stop()
        self.start()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the script's output (warnings and errors) and of the broker's own log."""
        parts = []
        for path in (self.log, self.data_dir / "server.log"):
            if path.exists():
                with path.open("rb") as f:
                    f.seek(max(0, path.stat().st_size - chars))
                    parts.append(f"--- {path}\n{f.read().decode(errors='replace')}")
        return "\n".join(parts) or "(no log written)"
