"""The first read API: bearer auth, account scoping, listing and cursor pagination."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.actions.setup import create_api_token, create_inbox
from hub.app import Hub
from hub.config import Config
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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: cursors no list of the hub ever made
HOSTILE_CURSORS = [
    "!!!",
    "%%%",
    "ශ්‍රී",
    "A",
    "=" * 8,
    "x" * 5000,
    _b64(b"not json"),
    _b64(b"{}"),
    _b64(b"[]"),
    _b64(b"null"),
    _b64(b'"a"'),
    _b64(b'["a\\u0000b"]'),
    _b64(b'["\\ud800"]'),
    _b64(b'["a\\udc00b"]'),
    _b64(b'["' + b"x" * 300 + b'"]'),
    _b64(b"[1e999]"),
    _b64(b"[123456789012345678901234567890]"),
    _b64(b"[9223372036854775808]"),
    _b64(b'[["nested"]]'),
    _b64(b'[{"id": "x"}]'),
    _b64(b"[true]"),
    _b64(b'["last_activity", "9999-12-31T10:00:00-14:00", "01A"]'),
    _b64(b'["last_activity", "0001-01-01T00:00:00+00:01", "01A"]'),
    _b64(b'["last_activity", "2026-01-01T00:00:00Z", "a\\u0000"]'),
    _b64(b'["priority", 99999999999999999999, "2026-01-01T00:00:00Z", "01A"]'),
    _b64(b'["created", "2026-01-01T00:00:00Z", "01A", "extra"]'),
    _b64(b"\xff\xfe\x00"),
]


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    """Room for the many requests of the hostile walk."""
    return hub_config.replace(rate_limit_token=100_000.0, rate_limit_address=100_000.0)


async def test_hostile_cursors_are_400_invalid_cursor_on_every_list(
    client: Client, hub: Hub
) -> None:
    """Every list that takes a cursor made by the hub: anything else is a 400 ``invalid_cursor``,
    never a 500 (a NUL in a cursor's id used to reach PostgreSQL)."""
    await post_messages(client, hub, count=1, contacts=1)
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    auth = {"Authorization": "Bearer test-bootstrap-token"}
    lists = [
        "/api/v1/conversations",
        "/api/v1/conversations?sort=priority",
        "/api/v1/conversations?sort=created",
        f"/api/v1/conversations/{conversation_id}/messages",
        f"/api/v1/conversations/{conversation_id}/events",
        "/api/v1/contacts",
    ]
    for path in lists:
        for cursor in HOSTILE_CURSORS:
            response = await client.get(path, params={"cursor": cursor}, headers=auth)
            assert response.status == 400, (path, cursor, await response.text())
            assert (await response.json())["error"]["code"] == "invalid_cursor", (path, cursor)
        # the cursors the hub makes still work
        page = await (await client.get(path, params={"limit": "1"}, headers=auth)).json()
        assert isinstance(page["data"], list)
