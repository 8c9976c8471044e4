"""A small ClickHouse server for tests: ClickHouse's HTTP interface answered by chDB.

Debian's ClickHouse is too old for the hub's SQL, so the server path (clickhouse-connect) is tested
against this: ``POST /?query=...&param_x=...&database=...`` with the data (an INSERT's rows, or
the query itself) in the body, answered in the format the query names. Settings in the URL are
applied with ``SETTINGS`` when ClickHouse knows them as query settings, and ignored otherwise
(session ids, compression and progress headers). Run it as its own process (chDB allows one data
path per process): ``python -m tests.support.clickhouse_http DATA_DIR`` prints the port.
"""

from __future__ import annotations

import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chdb import ChdbError
from chdb import session as chs

_IGNORED = {
    "query", "database", "session_id", "session_timeout", "compress", "decompress",
    "enable_http_compression", "send_progress_in_http_headers", "wait_end_of_query",
    "http_headers_progress_interval_ms", "default_format", "user", "password",
    "query_id", "client_protocol_version", "extremes", "quota_key",
}  # fmt: skip
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*$", re.IGNORECASE)


class Handler(BaseHTTPRequestHandler):
    session: Any = None
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self) -> None:
        url = urlsplit(self.path)
        args = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        query = args.get("query", "")
        sql = f"{query}\n{body}" if query else body
        params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
        settings = {
            k: v for k, v in args.items() if k not in _IGNORED and not k.startswith("param_")
        }
        fmt = "TabSeparated"
        found = (
            _FORMAT.search(sql.strip()) if not sql.lstrip().upper().startswith("INSERT") else None
        )
        if found:
            fmt = found.group(1)
            sql = sql.strip()[: found.start()]
        if settings and not sql.lstrip().upper().startswith("INSERT"):
            sql += " SETTINGS " + ", ".join(f"{k} = '{v}'" for k, v in settings.items())
        try:
            with self.lock:
                data = self.session.query(sql, fmt, params=params).bytes()
        except ChdbError as exc:
            self._send(500, str(exc).encode(), {"X-ClickHouse-Exception-Code": "1"})
            return
        self._send(200, data, {"X-ClickHouse-Format": fmt})

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(data)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_POST = _answer
    do_GET = _answer


def main() -> None:
    Handler.session = chs.Session(sys.argv[1])  # type: ignore[no-untyped-call]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
