"""Serves the web chat widget (the repository's ``widget/`` folder) at ``/widget/``: ``widget.js``
(the one script a site embeds), ``widget.css`` (linked into the widget's shadow root, so a site's
strict CSP needs no ``'unsafe-inline'``) and the Socket.IO client module the widget imports (from
``console/node_modules``). Sites on other origins load them, so they carry
``Access-Control-Allow-Origin: *`` (a module import is a CORS request) and
``Cross-Origin-Resource-Policy: cross-origin``; they are public files, the same for everyone.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.console import ConsoleFiles, _reply

_REPO = Path(__file__).resolve().parents[1]
_FILES = {
    "widget.js": Path("widget/widget.js"),
    "widget.css": Path("widget/widget.css"),
    "socket.io.esm.min.js": Path("console/node_modules/socket.io-client/dist/socket.io.esm.min.js"),
}
_CROSS_ORIGIN = {
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


def mount_widget(app: web.Application, root: Path = _REPO) -> None:
    files = ConsoleFiles(root)

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = files.load(files.root / _FILES[name]) if name in _FILES else None
        if found is None:
            raise web.HTTPNotFound()
        response = _reply(request, found)
        response.headers.update(_CROSS_ORIGIN)
        return response

    app.router.add_get("/widget/{name}", asset)
