"""The API-channel webhook through the real gateway: the happy path, retries, and every kind of
bad input answered with a 4xx JSON error and nothing stored."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.actions.setup import create_inbox
from hub.app import Hub
from tests.support.api_channel import api_body, signed_headers

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]


@pytest.fixture
async def inbox(hub: Hub) -> tuple[str, str]:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name="Shop"
        )
    return made.id, made.secrets["signing_secret"]


async def stored(hub: Hub, table: str = "messages") -> int:
    count: int = await hub.pool.fetchval(f"SELECT count(*) FROM {table}")
    return count


async def test_signed_message_is_stored_and_a_retry_is_not(
    client: Client, hub: Hub, inbox: tuple[str, str]
) -> None:
    inbox_id, secret = inbox
    body = api_body("ext-1", text="வணக்கம் नमस्ते ආයුබෝවන්")
    first = await client.post(
        f"/webhooks/api/{inbox_id}", data=body, headers=signed_headers(secret, body)
    )
    assert first.status == 200, await first.text()
    created = (await first.json())["messages"][0]
    retry = await client.post(
        f"/webhooks/api/{inbox_id}", data=body, headers=signed_headers(secret, body)
    )
    assert retry.status == 200
    again = (await retry.json())["messages"][0]
    assert again["id"] == created["id"] and again["duplicate"] is True
    row = await hub.pool.fetchrow("SELECT content, provider_message_id FROM messages")
    assert row is not None
    assert row["content"] == "வணக்கம் नमस्ते ආයුබෝවන්"
    assert row["provider_message_id"] == "ext-1"
    assert await stored(hub) == 1
    assert first.headers["X-Request-Id"]


def _cases(secret: str) -> list[tuple[str, bytes, dict[str, str], int, str]]:
    good = api_body("ext-9")
    unsigned = {"Content-Type": "application/json"}
    malformed = b'{"message_id": "x", "contact": '
    no_id = api_body(None)
    empty = api_body("ext-10", text=None)
    wrong_shape = b'{"message_id": 5, "contact": {"identifier": "x"}, "text": "hi"}'
    nested = b'{"a":' * 5000 + b"1" + b"}" * 5000
    bad_utf8 = b'{"message_id":"x","contact":{"identifier":"\xff\xfe"},"text":"hi"}'
    return [
        ("missing signature", good, unsigned, 403, "invalid_signature"),
        (
            "wrong signature",
            good,
            {**unsigned, "X-Hub-Signature-256": "sha256=" + "0" * 64},
            403,
            "invalid_signature",
        ),
        (
            "signature of another body",
            good,
            signed_headers(secret, api_body("other")),
            403,
            "invalid_signature",
        ),
        (
            "signature with the wrong secret",
            good,
            signed_headers("not-the-secret", good),
            403,
            "invalid_signature",
        ),
        (
            "truncated signature",
            good,
            {
                **unsigned,
                "X-Hub-Signature-256": signed_headers(secret, good)["X-Hub-Signature-256"][:-4],
            },
            403,
            "invalid_signature",
        ),
        (
            "wrong content type",
            good,
            {**signed_headers(secret, good), "Content-Type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        ("malformed JSON", malformed, signed_headers(secret, malformed), 400, "invalid_json"),
        ("invalid UTF-8", bad_utf8, signed_headers(secret, bad_utf8), 400, "invalid_json"),
        ("deeply nested JSON", nested, signed_headers(secret, nested), 400, "invalid_json"),
        (
            "missing provider message id",
            no_id,
            signed_headers(secret, no_id),
            422,
            "missing_provider_message_id",
        ),
        ("no text and no attachments", empty, signed_headers(secret, empty), 422, "empty_message"),
        ("wrong field type", wrong_shape, signed_headers(secret, wrong_shape), 422, "invalid_body"),
    ]


async def test_bad_input_is_refused_with_json_and_nothing_is_stored(
    client: Client, hub: Hub, inbox: tuple[str, str]
) -> None:
    inbox_id, secret = inbox
    for name, body, headers, status, code in _cases(secret):
        response = await client.post(f"/webhooks/api/{inbox_id}", data=body, headers=headers)
        assert response.status == status, (name, await response.text())
        error = (await response.json())["error"]
        assert error["code"] == code, name
        assert error["message"], name
    for table in ("messages", "contacts", "conversations", "outbox"):
        assert await stored(hub, table) == 0, table


async def test_unknown_inbox_channel_and_oversized_body(
    client: Client, hub: Hub, inbox: tuple[str, str]
) -> None:
    inbox_id, secret = inbox
    body = api_body("ext-1")
    headers = signed_headers(secret, body)
    unknown = await client.post("/webhooks/api/01NOSUCHINBOX", data=body, headers=headers)
    assert unknown.status == 404
    assert (await unknown.json())["error"]["code"] == "unknown_inbox"
    channel = await client.post(f"/webhooks/nope/{inbox_id}", data=body, headers=headers)
    assert channel.status == 404
    assert (await channel.json())["error"]["code"] == "unknown_channel"
    big = api_body("ext-big", text="x" * (70 * 1024))
    too_large = await client.post(
        f"/webhooks/api/{inbox_id}", data=big, headers=signed_headers(secret, big)
    )
    assert too_large.status == 413
    assert (await too_large.json())["error"]["code"] == "body_too_large"
    wrong_method = await client.get(f"/webhooks/api/{inbox_id}")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["error"]["code"] == "method_not_allowed"
    assert await stored(hub) == 0


async def test_inbox_without_secret_refuses_everything(client: Client, hub: Hub) -> None:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name="Broken"
        )
        await conn.execute(
            "UPDATE inboxes SET secrets = $1 WHERE id = $2", hub.box.seal({}), made.id
        )
    body = api_body("ext-1")
    response = await client.post(
        f"/webhooks/api/{made.id}",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256="},
    )
    assert response.status == 403
    assert await stored(hub) == 0


async def test_database_down_answers_503_so_providers_retry(
    client: Client, hub: Hub, inbox: tuple[str, str]
) -> None:
    inbox_id, secret = inbox
    body = api_body("ext-1")
    await client.post(f"/webhooks/api/{inbox_id}", data=body, headers=signed_headers(secret, body))
    # the gateway's and the committer's pool now point at a server that is not there
    working = hub.pool
    gone = await asyncpg.create_pool("postgresql://hub@127.0.0.1:9/hub", min_size=0)
    hub.pool = hub.ingest._pool = gone
    try:
        body2 = api_body("ext-2")
        response = await client.post(
            f"/webhooks/api/{inbox_id}", data=body2, headers=signed_headers(secret, body2)
        )
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "unavailable"
        assert response.headers["Retry-After"]
        ready = await client.get("/readyz")
        assert ready.status == 503
    finally:
        hub.pool = hub.ingest._pool = working
        await gone.close()
    assert await stored(hub) == 1
    # and once it is back, the provider's retry goes through
    retry = await client.post(
        f"/webhooks/api/{inbox_id}", data=body2, headers=signed_headers(secret, body2)
    )
    assert retry.status == 200
    assert await stored(hub) == 2
