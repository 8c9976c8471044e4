"""The gateway serves the console: index.html revalidated every time, assets with ETags (304 when
unchanged), the socket.io client's ES module from node_modules, nothing else of the folder, and
the same security headers as every response (no inline scripts in the page)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

pytestmark = pytest.mark.postgres


async def test_index_assets_and_refusals(client: TestClient[Any, Any]) -> None:
    index = await client.get("/")
    assert index.status == 200
    assert index.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in index.headers["Content-Security-Policy"]
    html = await index.text()
    assert '<script type="module" src="/console/src/main.js"></script>' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline scripts"
    assert not re.search(r"\son[a-z]+=", html), "no inline event handlers"

    main = await client.get("/console/src/main.js")
    assert main.status == 200 and main.content_type == "text/javascript"
    etag = main.headers["ETag"]
    again = await client.get("/console/src/main.js", headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag

    sio = await client.get("/console/socket.io.esm.min.js")
    assert sio.status == 200 and "Socket.IO v4" in (await sio.text())[:200]
    for lang in ("en", "si"):
        catalogue = await client.get(f"/console/i18n/{lang}.json")
        assert catalogue.status == 200
    en = await (await client.get("/console/i18n/en.json")).json()
    si = await (await client.get("/console/i18n/si.json")).json()
    assert set(en) == set(si)

    for path in (
        "/console/package.json",
        "/console/node_modules/socket.io-client/package.json",
        "/console/src/../package.json",
        "/console/src/%2e%2e/package.json",
        "/console/i18n/missing.json",
        "/console/index.html/x",
    ):
        assert (await client.get(path)).status == 404, path
