"""Who may read /metrics: anyone by default; with HUB_METRICS_TOKEN only a bearer of that token;
with HUB_METRICS_PORT only its own listener (the main port answers 404)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.ops import start_metrics_listener
from hub.app import Hub
from server.compose import build_app
from tests.support.processes import free_port

pytestmark = pytest.mark.postgres
TOKEN = "a-long-random-metrics-token"
Client = TestClient[Any, Any]


async def test_metrics_are_open_by_default(client: Client) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    assert "hub_" in await response.text()


async def test_the_metrics_token_is_required_when_set(hub: Hub) -> None:
    config = hub.config.replace(metrics_token=TOKEN)
    async with TestClient(TestServer(build_app(hub, config))) as client:
        missing = await client.get("/metrics")
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await missing.json())["error"]["code"] == "unauthenticated"
        assert "hub_" not in await missing.text()
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status == 200 and "hub_" in await right.text()
        assert (await client.get("/healthz")).status == 200, "health stays open"


async def test_a_metrics_port_moves_them_off_the_main_listener(hub: Hub) -> None:
    port = free_port()
    config = hub.config.replace(metrics_port=port, metrics_token=TOKEN, host="127.0.0.1")
    listener = await start_metrics_listener(hub, config)
    assert listener is not None
    try:
        async with TestClient(TestServer(build_app(hub, config))) as client:
            main = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert main.status == 404
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/metrics"
            async with http.get(url) as response:
                assert response.status == 401
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(url, headers=headers) as response:
                assert response.status == 200 and "hub_" in await response.text()
            async with http.get(f"http://127.0.0.1:{port}/api/v1/conversations") as response:
                assert response.status == 404, "only metrics on that port"
    finally:
        await listener.cleanup()
