"""The API's edge: security headers, CORS, rate limits (in-process and shared through Redis) and
the OpenAPI document with its docs page."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.routes import ALL_ROUTES
from hub.app import Hub
from hub.config import Config
from server.compose import build_app
from tests.conftest import ADMIN_TOKEN
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.postgres
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(
        rate_limit_token=1.0,  # bursts of 2
        rate_limit_address=50.0,
        trusted_proxies="127.0.0.1",
        cors_origins="https://console.example.com",
    )


async def test_security_headers_everywhere(client: TestClient[Any, Any]) -> None:
    for path in ("/healthz", "/api/v1/conversations", "/api/v1/nope"):
        response = await client.get(path)
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP
    api = await client.get("/api/v1/conversations")
    assert api.status == 401 and api.headers["Cache-Control"] == "no-store"
    over_tls = await client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert over_tls.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_cors_only_for_configured_origins(client: TestClient[Any, Any]) -> None:
    preflight = {"Access-Control-Request-Method": "PATCH"}
    ok = await client.options(
        "/api/v1/conversations", headers={**preflight, "Origin": "https://console.example.com"}
    )
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://console.example.com"
    assert "PATCH" in ok.headers["Access-Control-Allow-Methods"]
    refused = await client.options(
        "/api/v1/conversations", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert refused.status == 403 and "Access-Control-Allow-Origin" not in refused.headers
    simple = await client.get(
        "/api/v1/conversations", headers={**AUTH, "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in simple.headers


async def _until_limited(client: TestClient[Any, Any], headers: dict[str, str]) -> Any:
    for _ in range(10):
        response = await client.get("/api/v1/conversations", headers=headers)
        if response.status == 429:
            return response
        assert response.status == 200
    raise AssertionError("never rate limited")


async def test_token_bucket_answers_429_with_retry_after_and_recovers(
    client: TestClient[Any, Any],
) -> None:
    limited = await _until_limited(client, AUTH)
    body = await limited.json()
    assert body["error"]["code"] == "rate_limited" and body["error"]["details"]["limit"] == "token"
    wait = int(limited.headers["Retry-After"])
    assert wait >= 1
    await asyncio.sleep(wait)
    assert (await client.get("/api/v1/conversations", headers=AUTH)).status == 200


async def test_address_bucket_uses_the_forwarded_address_from_a_trusted_proxy(
    hub: Hub, hub_config: Config
) -> None:
    app = build_app(hub, hub_config.replace(rate_limit_address=1.0, rate_limit_token=0))
    async with TestClient(TestServer(app)) as client:
        first = {**AUTH, "X-Forwarded-For": "203.0.113.7"}
        await _until_limited(client, first)
        other = {**AUTH, "X-Forwarded-For": "203.0.113.8"}  # another client behind the proxy
        assert (await client.get("/api/v1/conversations", headers=other)).status == 200


@pytest.mark.redis
async def test_redis_buckets_are_shared_by_gateways(
    hub: Hub, hub_config: Config, redis_server: RedisServer
) -> None:
    shared = hub_config.replace(redis_url=redis_server.url, rate_limit_token=1.0)
    async with (
        TestClient(TestServer(build_app(hub, shared))) as a,
        TestClient(TestServer(build_app(hub, shared))) as b,
    ):
        assert (await a.get("/api/v1/conversations", headers=AUTH)).status == 200
        assert (await a.get("/api/v1/conversations", headers=AUTH)).status == 200
        assert (await b.get("/api/v1/conversations", headers=AUTH)).status == 429


async def test_openapi_document_lists_every_route_and_docs_are_served(
    client: TestClient[Any, Any],
) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    for spec in ALL_ROUTES:
        operation = doc["paths"][spec.path][spec.method.lower()]
        assert str(spec.status) in operation["responses"]
        assert ("security" in operation) == (spec.permission is None)
    page = await client.get("/api/v1/docs")
    assert page.status == 200 and "swagger-ui-bundle.js" in await page.text()
    script = await client.get("/api/v1/docs/static/swagger-ui-bundle.js")
    assert script.status == 200 and len(await script.read()) > 100_000
