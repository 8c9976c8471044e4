"""Agent replies and notes: one action behind REST and the socket, idempotent on client_id, and
the message.created event reaches agent sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from hub.actions.setup import hash_token
from hub.app import Hub
from tests.realtime.agents import Agent, agent_collecting
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres
AUTH = {"Authorization": "Bearer test-bootstrap-token"}


async def conversation(hub: Hub, server: str, session: aiohttp.ClientSession) -> str:
    inbox = await ApiInbox.create(hub, server)
    conversation_id: str = (await inbox.post(session, api_body("in-1")))["messages"][0][
        "conversation_id"
    ]
    return conversation_id


async def test_reply_and_note_over_rest_are_idempotent(hub: Hub, server: str) -> None:
    async with aiohttp.ClientSession() as session:
        cid = await conversation(hub, server, session)
        url = f"{server}api/v1/conversations/{cid}/messages"
        reply = {"content": "ඔව්, හෙට ලැබේවි", "client_id": "c-1"}
        async with session.post(url, json=reply, headers=AUTH) as first:
            assert first.status == 201
            made = await first.json()
        assert made["status"] == "queued" and made["private"] is False
        async with session.post(url, json=reply, headers=AUTH) as again:
            assert again.status == 200
            assert (await again.json())["id"] == made["id"]
        async with session.post(
            url, json={"content": "VIP", "private": True}, headers=AUTH
        ) as note:
            assert note.status == 201
            assert (await note.json())["status"] == "sent"
        for body, status, code in (
            ({"content": "  "}, 422, "empty_message"),
            ({"content": 5}, 422, "invalid_body"),
            ({"content": "x", "extra": 1}, 422, "invalid_body"),
        ):
            async with session.post(url, json=body, headers=AUTH) as bad:
                assert bad.status == status and (await bad.json())["error"]["code"] == code
        async with session.post(
            f"{server}api/v1/conversations/nope/messages", json={"content": "x"}, headers=AUTH
        ) as missing:
            assert missing.status == 404
        async with session.post(
            url, data=b"{", headers={**AUTH, "Content-Type": "application/json"}
        ) as broken:
            assert broken.status == 400
    rows = await hub.pool.fetch(
        "SELECT direction, private, status, sender_type FROM messages WHERE direction = 'outbound'"
    )
    assert sorted((r["private"], r["status"]) for r in rows) == [(False, "queued"), (True, "sent")]
    assert {r["sender_type"] for r in rows} == {"agent"}
    async with asyncio.timeout(10):  # one message.created per message, retries made none
        while (
            await hub.pool.fetchval("SELECT count(*) FROM event_log WHERE type = 'message.created'")
            < 2
        ):
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert (
        await hub.pool.fetchval("SELECT count(*) FROM event_log WHERE type = 'message.created'")
        == 2
    )


async def test_the_idempotency_key_header_makes_a_reply_retry_safe(hub: Hub, server: str) -> None:
    """The usual HTTP spelling of client_id: a retry after a lost answer stores nothing new."""
    async with aiohttp.ClientSession() as session:
        cid = await conversation(hub, server, session)
        url = f"{server}api/v1/conversations/{cid}/messages"
        keyed = {**AUTH, "Idempotency-Key": "h-1"}
        async with session.post(url, json={"content": "once"}, headers=keyed) as first:
            assert first.status == 201
            once = (await first.json())["id"]
        async with session.post(url, json={"content": "once"}, headers=keyed) as again:
            assert again.status == 200 and (await again.json())["id"] == once
        mismatch = {"content": "mismatch", "client_id": "h-2"}
        async with session.post(url, json=mismatch, headers=keyed) as refused:
            assert refused.status == 422, await refused.text()
        too_long = {**AUTH, "Idempotency-Key": "k" * 129}
        async with session.post(url, json={"content": "x"}, headers=too_long) as refused:
            assert refused.status == 400, await refused.text()


async def test_reply_over_the_socket_reaches_agent_streams(hub: Hub, server: str) -> None:
    async with aiohttp.ClientSession() as session:
        cid = await conversation(hub, server, session)
    agent, created = await agent_collecting(server, "message.created")
    sent = await agent.call(
        "send_message",
        {"conversation_id": cid, "content": "On its way", "client_id": "s-1"},
        namespace="/agent",
        timeout=10,
    )
    assert sent["ok"] and sent["status"] == "queued" and not sent["duplicate"]
    again = await agent.call(
        "send_message",
        {"conversation_id": cid, "content": "On its way", "client_id": "s-1"},
        namespace="/agent",
        timeout=10,
    )
    assert again["id"] == sent["id"] and again["duplicate"]
    bad = await agent.call("send_message", {"conversation_id": cid}, namespace="/agent", timeout=10)
    assert bad["error"]["code"] == "invalid_message"
    async with asyncio.timeout(10):
        while not created:
            await asyncio.sleep(0.02)
    assert created[0]["event"]["payload"]["message_id"] == sent["id"]
    assert created[0]["event"]["actor"]["kind"] == "agent"
    await asyncio.sleep(0.2)
    assert len(created) == 1, "the retried send made no second event"
    await agent.disconnect()


async def test_mark_read_moves_forward_once_and_is_announced(hub: Hub, server: str) -> None:
    async with aiohttp.ClientSession() as session:
        cid = await conversation(hub, server, session)
    first_message = await hub.pool.fetchval(
        "SELECT id FROM messages WHERE conversation_id = $1", cid
    )
    agent, reads = await agent_collecting(server, "conversation.read")

    async def mark(data: dict[str, Any]) -> Any:
        return await agent.call("mark_read", data, namespace="/agent", timeout=10)

    done = await mark({"conversation_id": cid})
    assert done == {"ok": True, "last_read_message_id": first_message, "changed": True}
    again = await mark({"conversation_id": cid, "message_id": first_message})
    assert again["changed"] is False, "reading the same message again changes nothing"
    assert (await mark({"conversation_id": cid, "message_id": "nope"}))["error"]["code"] == (
        "not_found"
    )
    assert (await mark({"conversation_id": "nope"}))["error"]["code"] == "not_found"
    async with asyncio.timeout(10):
        while not reads:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert len(reads) == 1
    assert reads[0]["event"]["payload"]["agent_id"] == "tests-admin"
    assert reads[0]["event"]["payload"]["last_read_message_id"] == first_message
    await agent.disconnect()


async def _agent_of(hub: Hub, user_id: str, inbox_id: str) -> str:
    """An agent who is a member of one inbox only; their API token."""
    token = f"{user_id}-token"
    async with hub.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO users (id, account_id, email, role) VALUES ($1, $2, $3, 'agent')",
            user_id,
            hub.account_id,
            f"{user_id}@example.com",
        )
        await conn.execute("INSERT INTO inbox_members VALUES ($1, $2)", inbox_id, user_id)
        await conn.execute(
            """INSERT INTO api_tokens (id, account_id, user_id, name, role, token_hash)
               VALUES ($1, $2, $3, 'test', 'agent', $4)""",
            token,
            hub.account_id,
            user_id,
            hash_token(token),
        )
    return token


async def test_an_idempotency_key_never_answers_for_another_agents_message(
    hub: Hub, server: str
) -> None:
    """Agent B's key reused by agent A in his own conversation (another inbox): A is told the key
    is taken (422), learns nothing of B's message, and B's message stays the only one with it;
    the same on every door (client_id, Idempotency-Key, the socket) and for a different content
    or conversation by the same agent."""
    shop = await ApiInbox.create(hub, server, "Shop")
    bank = await ApiInbox.create(hub, server, "Bank")
    async with aiohttp.ClientSession() as session:
        shop_cid = (await shop.post(session, api_body("s-in", identifier="+94771234567")))[
            "messages"
        ][0]["conversation_id"]
        bank_cid = (await bank.post(session, api_body("b-in", identifier="+94771234568")))[
            "messages"
        ][0]["conversation_id"]
        b_token = await _agent_of(hub, "agent-b", bank.id)
        a_token = await _agent_of(hub, "agent-a", shop.id)
        b_auth = {"Authorization": f"Bearer {b_token}"}
        a_auth = {"Authorization": f"Bearer {a_token}"}
        bank_url = f"{server}api/v1/conversations/{bank_cid}/messages"
        shop_url = f"{server}api/v1/conversations/{shop_cid}/messages"
        secret = {"content": "the bank's secret", "private": True, "client_id": "K"}
        async with session.post(bank_url, json=secret, headers=b_auth) as made:
            assert made.status == 201
            b_message = (await made.json())["id"]
        async with session.post(bank_url, json=secret, headers=b_auth) as retried:
            assert retried.status == 200 and (await retried.json())["id"] == b_message

        async def refused(url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
            async with session.post(url, json=body, headers=headers) as answer:
                text = await answer.text()
                assert answer.status == 422, text
                assert (await answer.json())["error"]["code"] == "idempotency_key_reused"
                assert b_message not in text and bank_cid not in text
                assert "secret" not in text and "private" not in text

        await refused(shop_url, {"content": "your order ships", "client_id": "K"}, a_auth)
        await refused(shop_url, {"content": "your order ships"}, {**a_auth, "Idempotency-Key": "K"})
        # the same author, another conversation or another content: not a retry either
        await refused(
            shop_url, {"content": "the bank's secret", "private": True, "client_id": "K"}, AUTH
        )
        await refused(bank_url, {"content": "changed", "private": True, "client_id": "K"}, b_auth)

    a = Agent()
    await a.connect(server, token=a_token)
    answer = await a.client.call(
        "send_message",
        {"conversation_id": shop_cid, "content": "your order ships", "client_id": "K"},
        namespace="/agent",
        timeout=10,
    )
    await a.client.disconnect()
    assert answer["error"]["code"] == "idempotency_key_reused" and "id" not in answer
    assert b_message not in str(answer)
    rows = await hub.pool.fetch(
        "SELECT id, conversation_id FROM messages WHERE client_message_id = 'K'"
    )
    assert [(r["id"], r["conversation_id"]) for r in rows] == [(b_message, bank_cid)]
    # a fresh key works for A
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            shop_url, json={"content": "your order ships", "client_id": "K2"}, headers=a_auth
        ) as stored,
    ):
        assert stored.status == 201
