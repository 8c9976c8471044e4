"""Where analytics rows live: chDB (ClickHouse in this process) or a ClickHouse server.

Both speak the same SQL, so the schema and every report query are written once against this small
protocol: ``execute`` (DDL, mutations), ``insert`` (rows as JSONCompactEachRow, the one insert path
of the consumer, the backfill and the benchmark) and ``query`` (rows as lists). Both clients are
blocking; every call runs on a small thread pool of its own so the event loop never waits on
ClickHouse.

chDB runs one embedded server per process, bound to one data path: a second path cannot be opened
while the first is in use (chDB 4.x refuses it). Sessions on one path are thread-safe (chDB's
``Session`` docstring: internal mutexes guard the connection). So this module keeps one session per
process and per path, shared and reference-counted; hubs in one process with the same data
directory share it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec


class AnalyticsUnavailable(ConnectionError):
    """The analytics store cannot be reached now (a transient error: consumers retry it)."""


class AnalyticsQueryError(ValueError):
    """ClickHouse refused a statement (a bug in ours, or a value it cannot take): not transient."""


Params = Mapping[str, Any]


class Backend(Protocol):
    database: str
    #: a short name for health checks and logs: ``chdb`` or ``clickhouse``
    kind: str

    async def execute(self, sql: str, params: Params | None = None) -> None: ...

    async def insert(self, table: str, rows: bytes, count: int) -> None:
        """``rows``: JSONCompactEachRow lines in the table's column order; ``count`` lines."""
        ...

    async def query(self, sql: str, params: Params | None = None) -> list[list[Any]]: ...

    async def close(self) -> None: ...


_ROWS = msgspec.json.Decoder(dict[str, Any])
#: settings every insert carries: RFC 3339 times as msgspec writes them
INSERT_SETTINGS = {"date_time_input_format": "best_effort"}


class _Runner:
    """A few threads for the blocking client, so queries never hold the event loop.

    ``shared``: the process keeps these threads for good. chDB's engine opens per-thread files
    (``/proc/thread-self/stat``, ``io``, ``schedstat``) for every thread that queries and never
    closes them when a thread ends, so a pool per hub leaked three descriptors per thread and
    start, until the process ran out of select()-able descriptors."""

    _shared: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
    _lock = threading.Lock()

    def __init__(self, name: str, threads: int, *, shared: bool = False) -> None:
        self._owned = not shared
        if shared:
            with self._lock:
                pool = self._shared.get(name)
                if pool is None:
                    pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix=name)
                    self._shared[name] = pool
            self._pool = pool
        else:
            self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix=name)

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        if self._owned:
            self._pool.shutdown(wait=True)


# --- chDB ----------------------------------------------------------------------------------------

_engine_lock = threading.Lock()
_engine: dict[str, Any] = {}  # path, session, users


def _open_session(path: str) -> Any:
    with _engine_lock:
        if _engine:
            if _engine["path"] != path:
                raise AnalyticsUnavailable(
                    f"chDB already holds {_engine['path']} in this process; one data path per "
                    "process"
                )
            _engine["users"] += 1
            return _engine["session"]
        from chdb import session as chs  # imported on first use: it loads the engine

        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            session = chs.Session(path)  # type: ignore[no-untyped-call]
        except Exception as exc:  # chDB's errors are RuntimeErrors of one class
            raise AnalyticsUnavailable(f"chDB could not open {path}: {exc}") from exc
        _engine.update(path=path, session=session, users=1)
        return session


#: chDB binds query parameters on its one connection: two threads binding at once lose each
#: other's ("Substitution `x` is not set"), so statements with parameters take turns
_params_lock = threading.Lock()


def _release_session(session: Any) -> None:
    with _engine_lock:
        if not _engine or _engine["session"] is not session:
            return
        _engine["users"] -= 1
        if _engine["users"] == 0:
            _engine.clear()
            session.close()


#: ClickHouse reads a String parameter's text in its escaped (TSV) format: a raw tab ended the
#: value (an error, a 500 for a filter from the query string) and a backslash began an escape
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def _literal(value: Any) -> Any:
    """chDB binds parameters as text: strings escaped, lists as ClickHouse array literals."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_quote(v) for v in value) + "]"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return value


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


class ChdbBackend:
    """ClickHouse in this process (chDB), data under ``path``."""

    kind = "chdb"

    def __init__(self, path: Path, database: str) -> None:
        self.path = str(path)
        self.database = database
        self._runner = _Runner("chdb", 2, shared=True)
        self._session: Any = None

    def _sync_session(self) -> Any:
        if self._session is None:
            self._session = _open_session(self.path)
        return self._session

    def _run(self, sql: str, fmt: str, params: Params | None) -> bytes:
        from chdb import ChdbError

        session = self._sync_session()
        bound = {k: _literal(v) for k, v in (params or {}).items()}
        try:
            if bound:
                with _params_lock:
                    result = session.query(sql, fmt, params=bound)
            else:
                result = session.query(sql, fmt)
        except (ChdbError, RuntimeError) as exc:  # a session's errors are chdb._exceptions'
            # ChdbError, a RuntimeError and not the chdb.ChdbError the package exports
            raise AnalyticsQueryError(str(exc)) from exc
        data: bytes = result.bytes()
        return data

    async def execute(self, sql: str, params: Params | None = None) -> None:
        await self._runner.run(self._run, sql, "CSV", params)

    async def insert(self, table: str, rows: bytes, count: int) -> None:
        if not count:
            return
        settings = ", ".join(f"{k}='{v}'" for k, v in INSERT_SETTINGS.items())
        sql = (
            f"INSERT INTO {self.database}.{table} SETTINGS {settings} FORMAT JSONCompactEachRow\n"
            + rows.decode()
        )
        await self._runner.run(self._run, sql, "CSV", None)

    async def query(self, sql: str, params: Params | None = None) -> list[list[Any]]:
        raw = await self._runner.run(self._run, sql, "JSONCompact", params)
        return _compact_rows(raw)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await self._runner.run(_release_session, session)
        self._runner.close()


def _compact_rows(raw: bytes) -> list[list[Any]]:
    if not raw.strip():
        return []
    data: list[list[Any]] = _ROWS.decode(raw)["data"]
    return data


# --- ClickHouse server ---------------------------------------------------------------------------


def _server_errors() -> tuple[type[BaseException], ...]:
    from clickhouse_connect.driver.exceptions import OperationalError

    return (OperationalError, OSError)


class ServerBackend:
    """A ClickHouse server over its HTTP interface (clickhouse-connect)."""

    kind = "clickhouse"

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        self._runner = _Runner("clickhouse", 4)
        self._client: Any = None
        self._lock = threading.Lock()

    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import clickhouse_connect

                try:
                    self._client = clickhouse_connect.get_client(
                        dsn=self.url,
                        connect_timeout=5,
                        send_receive_timeout=60,
                        autogenerate_session_id=False,
                    )
                except _server_errors() as exc:
                    raise AnalyticsUnavailable(f"ClickHouse unreachable: {exc}") from exc
            return self._client

    def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_connect.driver.exceptions import DatabaseError

        client = self._sync_client()
        try:
            return getattr(client, fn)(*args, **kwargs)
        except _server_errors() as exc:
            raise AnalyticsUnavailable(f"ClickHouse unreachable: {exc}") from exc
        except DatabaseError as exc:
            raise AnalyticsQueryError(str(exc)) from exc

    async def execute(self, sql: str, params: Params | None = None) -> None:
        await self._runner.run(lambda: self._call("command", sql, parameters=dict(params or {})))

    async def insert(self, table: str, rows: bytes, count: int) -> None:
        if not count:
            return
        await self._runner.run(
            lambda: self._call(
                "raw_insert",
                f"{self.database}.{table}",
                insert_block=rows,
                settings=INSERT_SETTINGS,
                fmt="JSONCompactEachRow",
            )
        )

    async def query(self, sql: str, params: Params | None = None) -> list[list[Any]]:
        raw = await self._runner.run(
            lambda: self._call("raw_query", sql, parameters=dict(params or {}), fmt="JSONCompact")
        )
        return _compact_rows(raw)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._runner.run(client.close)
        self._runner.close()


def open_backend(data_dir: Path, database: str, url: str | None) -> Backend:
    """The server when ``url`` is set, else chDB under ``data_dir/analytics``. Nothing connects
    until the first call (a server that is down at start is retried like any outage)."""
    if url:
        return ServerBackend(url, database)
    return ChdbBackend(Path(data_dir) / "analytics", database)


def transient_errors() -> tuple[type[BaseException], ...]:
    """What a consumer retries without limit: the store is away, never bad input."""
    return (AnalyticsUnavailable,)


def rows_bytes(rows: Sequence[msgspec.Struct]) -> bytes:
    """Rows (array-like structs in column order) as JSONCompactEachRow."""
    return _ENCODER.encode_lines(rows)


_ENCODER = msgspec.json.Encoder()
