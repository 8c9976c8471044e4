"""One authorization rule for both doors: an agent who is a member of some inboxes gets only those
inboxes' events on its socket, and only their conversations over REST and socket calls."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from hub.actions.setup import hash_token
from hub.app import Hub
from tests.realtime.agents import TOKEN, Agent
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres
LIMITED = "limited-agent-token"


async def test_a_limited_caller_sees_only_its_inboxes_on_every_door(hub: Hub, server: str) -> None:
    shop = await ApiInbox.create(hub, server, "Shop")
    bank = await ApiInbox.create(hub, server, "Bank")
    async with hub.pool.acquire() as conn:  # an agent, member of the shop inbox only
        await conn.execute(
            """INSERT INTO users (id, account_id, email, role)
               VALUES ('limited', $1, 'limited@example.com', 'agent')""",
            hub.account_id,
        )
        await conn.execute("INSERT INTO inbox_members VALUES ($1, 'limited')", shop.id)
        await conn.execute(
            """INSERT INTO api_tokens (id, account_id, user_id, name, role, token_hash)
               VALUES ('limited-token', $1, 'limited', 'test', 'agent', $2)""",
            hub.account_id,
            hash_token(LIMITED),
        )
    admin, limited = Agent(), Agent()
    await admin.connect(server, token=TOKEN)
    await limited.connect(server, token=LIMITED)

    async with aiohttp.ClientSession() as session:
        conversations: dict[str, str] = {}
        for made in (shop, bank, shop):
            body = api_body(f"{made.id}-{len(conversations)}", identifier="+94771234567")
            answer = await made.post(session, body)
            conversations[made.id] = answer["messages"][0]["conversation_id"]

        def received(agent: Agent) -> list[str]:
            return [
                e["event"]["payload"]["inbox_id"]
                for e in agent.events
                if e["type"] == "message.received"
            ]

        await admin.wait_until(lambda: len(received(admin)) == 3)
        await limited.wait_until(lambda: len(received(limited)) == 2)
        assert received(admin) == [shop.id, bank.id, shop.id]
        assert received(limited) == [shop.id, shop.id], "nothing from the bank inbox"
        assert all(e["event"]["payload"].get("inbox_id") != bank.id for e in limited.events)
        seqs = limited.seqs()
        assert seqs == sorted(seqs), "gaps where events are not for it, never out of order"

        async def get(path: str, token: str) -> Any:
            async with session.get(
                f"{server}{path}", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                return response.status, await response.json()

        status, listed = await get("api/v1/conversations", LIMITED)
        assert status == 200
        assert {c["inbox_id"] for c in listed["data"]} == {shop.id}
        assert [c["inbox_id"] for c in listed["inboxes"]] == [shop.id]
        status, _ = await get(f"api/v1/conversations/{conversations[bank.id]}/messages", LIMITED)
        assert status == 404
        status, _ = await get(f"api/v1/conversations/{conversations[bank.id]}/messages", TOKEN)
        assert status == 200

    async def call(event: str, data: dict[str, Any]) -> Any:
        return await limited.client.call(event, data, namespace="/agent", timeout=10)

    hidden = {"conversation_id": conversations[bank.id]}
    assert (await call("send_message", {**hidden, "content": "hi"}))["error"]["code"] == (
        "not_found"
    )
    assert (await call("mark_read", hidden))["error"]["code"] == "not_found"
    assert (await call("join", hidden))["error"]["code"] == "not_found"
    mine = {"conversation_id": conversations[shop.id]}
    assert (await call("send_message", {**mine, "content": "ok"}))["ok"] is True
    await admin.client.disconnect()
    await limited.client.disconnect()


async def test_contacts_by_inbox_keeps_other_inboxes_contacts_off_a_limited_socket(
    hub: Hub, server: str
) -> None:
    """With the account's ``contacts_by_inbox`` on, a limited agent's socket gets contact events
    only for contacts with a conversation in its inboxes; off, it gets all of them."""
    shop = await ApiInbox.create(hub, server, "Shop")
    bank = await ApiInbox.create(hub, server, "Bank")
    async with hub.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO users (id, account_id, email, role)
               VALUES ('limited', $1, 'limited@example.com', 'agent')""",
            hub.account_id,
        )
        await conn.execute("INSERT INTO inbox_members VALUES ($1, 'limited')", shop.id)
        await conn.execute(
            """INSERT INTO api_tokens (id, account_id, user_id, name, role, token_hash)
               VALUES ('limited-token', $1, 'limited', 'test', 'agent', $2)""",
            hub.account_id,
            hash_token(LIMITED),
        )
    limited = Agent()
    await limited.connect(server, token=LIMITED)

    def created(agent: Agent) -> list[str | None]:
        return [
            e["event"]["payload"]["name"] for e in agent.events if e["type"] == "contact.created"
        ]

    async with aiohttp.ClientSession() as session:
        await bank.post(session, api_body("off-1", identifier="+94770000001", name="Bank off"))
        await shop.post(session, api_body("off-2", identifier="+94770000002", name="Shop off"))
        await limited.wait_until(lambda: len(created(limited)) == 2)
        async with session.patch(
            f"{server}api/v1/account",
            json={"contacts_by_inbox": True},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            assert response.status == 200, await response.text()
        await bank.post(session, api_body("on-1", identifier="+94770000003", name="Bank on"))
        await shop.post(session, api_body("on-2", identifier="+94770000004", name="Shop on"))
        await limited.wait_until(lambda: "Shop on" in created(limited))
    assert created(limited) == ["Bank off", "Shop off", "Shop on"], "no Bank contact once on"
    await limited.client.disconnect()

    late = Agent()  # a replay from the start applies the same rule
    await late.connect(server, token=LIMITED, last_seq=0)
    await late.wait_until(lambda: "Shop on" in created(late))
    assert "Bank on" not in created(late)
    await late.client.disconnect()
