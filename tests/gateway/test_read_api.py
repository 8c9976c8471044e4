"""The first read API: bearer auth, account scoping, listing and cursor pagination."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.actions.setup import create_api_token, create_inbox
from hub.app import Hub
from hub.ids import new_id
from tests.support.api_channel import api_body, signed_headers

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]


async def post_messages(client: Client, hub: Hub, count: int, contacts: int) -> str:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name="Shop"
        )
    secret = made.secrets["signing_secret"]
    for i in range(count):
        body = api_body(f"m-{i}", identifier=f"c-{i % contacts}", text=f"text {i}")
        response = await client.post(
            f"/webhooks/api/{made.id}", data=body, headers=signed_headers(secret, body)
        )
        assert response.status == 200
    return made.id


async def test_requests_without_a_valid_token_are_refused(client: Client) -> None:
    missing = await client.get("/api/v1/conversations")
    assert missing.status == 401
    assert (await missing.json())["error"]["code"] == "unauthenticated"
    wrong = await client.get("/api/v1/conversations", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    assert (await wrong.json())["error"]["code"] == "invalid_token"


async def test_list_conversations_and_messages_with_cursors(client: Client, hub: Hub) -> None:
    inbox_id = await post_messages(client, hub, count=9, contacts=3)
    async with hub.pool.acquire() as conn:
        token = (await create_api_token(conn, account_id=hub.account_id, name="t")).token
    auth = {"Authorization": f"Bearer {token}"}

    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "2", "inbox_id": inbox_id, **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/v1/conversations", params=query, headers=auth)).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3
    conversation_id = seen[0]

    texts: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (
            await client.get(
                f"/api/v1/conversations/{conversation_id}/messages", params=params, headers=auth
            )
        ).json()
        texts += [m["content"] for m in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(texts) == 3 and all(t.startswith("text ") for t in texts)
    assert texts == sorted(texts, key=lambda t: int(t.split()[1])), "timeline order"

    resolved = await client.get(
        "/api/v1/conversations", params={"status": "resolved"}, headers=auth
    )
    assert (await resolved.json())["data"] == []


async def test_bad_parameters_are_400(client: Client, hub: Hub) -> None:
    auth = {"Authorization": "Bearer test-bootstrap-token"}
    for params, code in (
        ({"limit": "0"}, "invalid_parameter"),
        ({"limit": "abc"}, "invalid_parameter"),
        ({"status": "closed"}, "invalid_parameter"),
        ({"cursor": "!!!"}, "invalid_cursor"),
        ({"cursor": "WzFd"}, "invalid_cursor"),
    ):
        response = await client.get("/api/v1/conversations", params=params, headers=auth)
        assert response.status == 400, params
        assert (await response.json())["error"]["code"] == code, params


async def test_another_accounts_conversation_is_not_found(client: Client, hub: Hub) -> None:
    await post_messages(client, hub, count=1, contacts=1)
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    other = new_id()
    async with hub.pool.acquire() as conn:
        await conn.execute("INSERT INTO accounts (id, name) VALUES ($1, 'Other')", other)
        token = (await create_api_token(conn, account_id=other, name="other")).token
    auth = {"Authorization": f"Bearer {token}"}
    listing = await client.get("/api/v1/conversations", headers=auth)
    assert (await listing.json())["data"] == []
    messages = await client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=auth)
    assert messages.status == 404


async def test_health_readiness_and_metrics(client: Client, hub: Hub) -> None:
    await post_messages(client, hub, count=2, contacts=1)
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"]["database"] == "ok"
    text = await (await client.get("/metrics")).text()
    assert 'hub_messages_ingested_total{channel="api"}' in text
    assert "hub_outbox_backlog" in text
    assert 'hub_bus_lag{group="journal",partition="0",topic="conversations"}' in text
    assert "hub_http_request_duration_seconds_bucket" in text


async def test_request_ids_are_echoed_only_when_sane(client: Client) -> None:
    given = await client.get("/healthz", headers={"X-Request-Id": "shop-42.retry:1"})
    assert given.headers["X-Request-Id"] == "shop-42.retry:1"
    for bad in ("x" * 200, "a b", "ශ්‍රී", "<script>"):
        response = await client.get("/healthz", headers={"X-Request-Id": bad})
        assert response.status == 200
        assert response.headers["X-Request-Id"] != bad
        assert len(response.headers["X-Request-Id"]) == 26
