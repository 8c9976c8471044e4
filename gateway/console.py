"""Serves the agent web console (the repository's ``console/`` folder) at ``/``.

No build step: ``console/`` holds plain ES modules, CSS, the message catalogues and
``index.html``; the official Socket.IO client comes from ``console/node_modules`` (``npm ci
--prefix console``, which ``scripts/serve`` and ``scripts/test`` run). The folder is resolved from
the repository root (the hub runs from its clone, installed editable); ``HUB_CONSOLE_DIR`` points
elsewhere. Without the folder the gateway simply serves no console.

Caching: ``index.html`` is ``no-cache`` (always revalidated), every other asset carries a strong
``ETag`` (a hash of its bytes) and ``Cache-Control: no-cache`` too, so a browser revalidates with
``If-None-Match`` and gets a body-less ``304`` while nothing changed: an upgrade is seen at the
next load without any build-time file hashing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

_REPO = Path(__file__).resolve().parents[1]
#: public folders of console/ (never node_modules, package files or anything else)
_PUBLIC = ("src", "i18n", "styles", "assets")
#: the Socket.IO client's self-contained ES module build
_VENDOR = {"socket.io.esm.min.js": Path("node_modules/socket.io-client/dist/socket.io.esm.min.js")}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".map": "application/json",
}


def console_dir(configured: str = "") -> Path:
    """``HUB_CONSOLE_DIR`` (the ``console_dir`` setting), else ``console/`` of this clone."""
    return Path(configured) if configured else _REPO / "console"


@dataclass(frozen=True)
class _Asset:
    body: bytes
    etag: str
    content_type: str
    stamp: tuple[int, int]  # (mtime_ns, size) it was read at


class ConsoleFiles:
    """Reads assets on demand and keeps them (with their ETag) until the file changes."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, _Asset] = {}

    def resolve(self, tail: str) -> Path | None:
        parts = tail.split("/")
        if tail in _VENDOR:
            return self.root / _VENDOR[tail]
        if len(parts) < 2 or parts[0] not in _PUBLIC or any(p in ("", ".", "..") for p in parts):
            return None
        path = (self.root / tail).resolve()
        if not path.is_relative_to(self.root / parts[0]):
            return None
        return path

    def load(self, path: Path) -> _Asset | None:
        try:
            info = path.stat()
        except OSError:
            return None
        if not path.is_file() or path.suffix not in _TYPES:
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached
        body = path.read_bytes()
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        asset = _Asset(body, etag, _TYPES[path.suffix], stamp)
        self._cache[path] = asset
        return asset


def _reply(request: web.Request, asset: _Asset) -> web.Response:
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


def mount_console(
    app: web.Application, root: Path, setup_open: Callable[[], Awaitable[bool]] | None = None
) -> bool:
    """Add ``GET /`` and ``GET /console/{path}``; False (nothing mounted) without the folder.
    With ``setup_open``, ``GET /setup`` serves the console (its first-run page) while that
    answers true, and 404 once the hub is set up."""
    files = ConsoleFiles(root)
    if not (files.root / "index.html").is_file():
        return False

    async def index(request: web.Request) -> web.Response:
        asset = files.load(files.root / "index.html")
        if asset is None:
            raise web.HTTPNotFound()
        return _reply(request, asset)

    async def asset(request: web.Request) -> web.Response:
        path = files.resolve(request.match_info["tail"])
        found = files.load(path) if path is not None else None
        if found is None:
            raise web.HTTPNotFound()
        return _reply(request, found)

    async def setup(request: web.Request) -> web.Response:
        if setup_open is None or not await setup_open():
            raise web.HTTPNotFound()
        return await index(request)

    app.router.add_get("/", index)
    app.router.add_get("/setup", setup)
    app.router.add_get("/console/{tail:.+}", asset)
    return True
