"""Reports of role ``all`` split in two processes (``HUB_WORKER_PROCESSES=1``) on chDB.

chDB holds its data directory in one process (a second process cannot open it), so the worker
child, which writes the analytics tables, owns it; the gateway's report queries are sent to the
child over loopback HTTP (its operations listener, ``POST /internal/analytics``) and answered
from the same store. The two processes share the hub's secret key, and the request carries a key
derived from it, so no other local process can query through it.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from analytics.backend import AnalyticsQueryError, AnalyticsUnavailable, Backend, Params

log = logging.getLogger(__name__)

PATH = "/internal/analytics"
#: what the key is derived for (``SecretBox.derive``)
PURPOSE = "analytics-forward"
_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=2)


class ForwardedBackend:
    """The gateway's view of the worker child's chDB: queries only (the child writes)."""

    kind = "chdb (in the worker process)"

    def __init__(self, url: str, key: bytes, database: str) -> None:
        self.url = url.rstrip("/") + PATH
        self.database = database
        self._auth = {"Authorization": f"Bearer {key.hex()}"}
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, op: str, sql: str, params: Params | None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        body = orjson.dumps({"op": op, "sql": sql, "params": dict(params or {})})
        try:
            async with self._session.post(self.url, data=body, headers=self._auth) as response:
                answer = await response.json(loads=orjson.loads)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AnalyticsUnavailable(f"the worker process did not answer: {exc!r}") from exc
        if status == 400:
            raise AnalyticsQueryError(answer.get("error", "refused"))
        if status != 200:
            raise AnalyticsUnavailable(answer.get("error", f"the worker process answered {status}"))
        return answer.get("rows")

    async def execute(self, sql: str, params: Params | None = None) -> None:
        await self._call("execute", sql, params)

    async def insert(self, table: str, rows: bytes, count: int) -> None:
        raise AnalyticsQueryError("the worker process writes the analytics tables, not the gateway")

    async def query(self, sql: str, params: Params | None = None) -> list[list[Any]]:
        rows: list[list[Any]] = await self._call("query", sql, params)
        return rows

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def forward_handler(backend_of: Any, key: bytes) -> Any:
    """The worker child's side: ``backend_of()`` is its chDB backend, or None while it has none."""
    expected = f"Bearer {key.hex()}".encode()

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("analytics forward refused: bad key")
            return _json({"error": "unauthorised"}, 401)
        backend: Backend | None = backend_of()
        if backend is None:
            return _json({"error": "analytics is not open in the worker process"}, 503)
        try:
            asked = orjson.loads(await request.read())
            op, sql, params = asked["op"], asked["sql"], asked.get("params") or {}
            if op not in ("query", "execute") or not isinstance(sql, str):
                raise ValueError(op)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("analytics forward refused: bad request", extra={"error": repr(exc)})
            return _json({"error": "expected {op: query|execute, sql, params}"}, 400)
        try:
            if op == "query":
                return _json({"rows": await backend.query(sql, params)}, 200)
            await backend.execute(sql, params)
            return _json({"rows": None}, 200)
        except AnalyticsQueryError as exc:
            return _json({"error": str(exc)}, 400)
        except AnalyticsUnavailable as exc:
            return _json({"error": str(exc)}, 503)

    return handle


def _json(data: Any, status: int) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
