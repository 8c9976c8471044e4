"""Agent bots end to end with a bot as a local HTTP server: the inbox hands its new conversation to
the bot over a signed outgoing webhook, the bot answers through the API with its own token while
assignment leaves the conversation alone, then hands off: assignment runs at once and the bot
gets nothing more of that conversation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from automation.signing import verify
from hub.app import Hub
from tests.automation.conftest import ADMIN
from tests.automation.test_assignment import members, policy
from tests.support.api_channel import ApiInbox, api_body
from tests.support.bus_progress import caught_up

pytestmark = pytest.mark.postgres


class Bot:
    """Answers each customer message; hands off when asked for a human."""

    def __init__(self) -> None:
        self.hub = ""
        self.secret = ""
        self.token = ""
        self.events: list[dict[str, Any]] = []
        self.handoffs: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(
            self.secret,
            request.headers["X-Hub-Timestamp"],
            body,
            request.headers["X-Hub-Signature"],
        ):
            self.bad_signatures += 1
            return web.Response(status=401)
        event = json.loads(body)
        self.events.append(event)
        conversation = event["conversation_id"]
        auth = {"Authorization": f"Bearer {self.token}"}
        if event["type"] == "message.received":
            async with aiohttp.ClientSession() as http:
                if "human" in event["payload"]["content"]:
                    async with http.post(
                        f"{self.hub}/api/v1/conversations/{conversation}/handoff", headers=auth
                    ) as r:
                        assert r.status == 200, await r.text()
                        self.handoffs.append(await r.json())
                else:
                    async with http.post(
                        f"{self.hub}/api/v1/conversations/{conversation}/messages",
                        json={"content": f"Bot here. You said: {event['payload']['content']}"},
                        headers=auth,
                    ) as r:
                        assert r.status == 201, await r.text()
        self.changed.set()
        return web.Response(text="ok")

    async def until(self, check: Any, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not check():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def bot() -> AsyncIterator[tuple[Bot, str]]:
    found = Bot()
    app = web.Application()
    app.router.add_post("/bot", found.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield found, str(server.make_url("/bot"))
    await server.close()


async def test_a_bot_answers_then_hands_off_to_the_human_queue(
    hub: Hub, server: str, bot: tuple[Bot, str]
) -> None:
    helper, url = bot
    helper.hub = server
    inbox = await ApiInbox.create(hub, server)
    (agent,) = await members(hub, inbox.id, 1)
    await policy(server, inbox.id, strategy="round_robin", only_online=False)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server}/api/v1/webhooks",
            json={"name": "Bot", "url": url, "event_types": ["conversation.created"]},
            headers=ADMIN,
        ) as r:
            assert r.status == 201, await r.text()
            hook = await r.json()
        helper.secret = hook["secret"]
        async with http.put(
            f"{server}/api/v1/inboxes/{inbox.id}/bot",
            json={"name": "Helper", "webhook_id": hook["id"]},
            headers=ADMIN,
        ) as r:
            assert r.status == 200, await r.text()
            made = await r.json()
        helper.token = made["token"]
        assert helper.token.startswith("hub_")
        async with http.put(
            f"{server}/api/v1/inboxes/{inbox.id}/bot",
            json={"name": "Helper 2", "webhook_id": hook["id"]},
            headers=ADMIN,
        ) as r:
            again = await r.json()
        assert again["token"] is None and again["token_id"] == made["token_id"]

        answer = await inbox.post(http, api_body("m-1", text="hello"))
        conversation = answer["messages"][0]["conversation_id"]
        await helper.until(
            lambda: (
                [e["type"] for e in helper.events] == ["conversation.created", "message.received"]
            )
        )

        async def bot_replied() -> bool:
            return bool(
                await hub.pool.fetchval(
                    """SELECT count(*) FROM messages WHERE conversation_id = $1
                        AND direction = 'outbound' AND sender_id = $2""",
                    conversation,
                    made["token_id"],
                )
            )

        async with asyncio.timeout(15):
            while not await bot_replied():
                await asyncio.sleep(0.05)
        # the assigner saw the conversation and left it to the bot
        await _assigner_saw(hub, conversation)
        row = await hub.pool.fetchrow(
            "SELECT assignee_id FROM conversations WHERE id = $1", conversation
        )
        assert row is not None and row["assignee_id"] is None
        assert not await hub.pool.fetchval(
            "SELECT count(*) FROM assignment_queue WHERE conversation_id = $1", conversation
        )

        await inbox.post(http, api_body("m-2", text="I want a human please"))
        await helper.until(lambda: len(helper.handoffs) == 1)
        assert helper.handoffs[0]["assignee_id"] == agent
        assert (
            await hub.pool.fetchval(
                "SELECT assignee_id FROM conversations WHERE id = $1", conversation
            )
            == agent
        )
        audit = await hub.pool.fetchrow(
            "SELECT actor_type, actor_id FROM audit_log WHERE action = 'conversation.handed_off'"
        )
        assert audit is not None and tuple(audit) == ("api_token", made["token_id"])
        # handing off again answers the first handoff
        async with http.post(
            f"{server}/api/v1/conversations/{conversation}/handoff", headers=ADMIN
        ) as r:
            assert r.status == 200
            assert (await r.json())["handed_off_at"] == helper.handoffs[0]["handed_off_at"]

        # the bot gets nothing more of this conversation
        third = await inbox.post(http, api_body("m-3", text="thanks"))
        third_event = await _event_of(hub, third["messages"][0]["id"])
        await _fed(hub, third_event)
        assert not await hub.pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE event_id = $1", third_event
        )
        assert len(helper.events) == 3 and helper.bad_signatures == 0

        # a conversation of an inbox without a bot cannot be handed off
        plain = await ApiInbox.create(hub, server)
        other = await plain.post(http, api_body("m-4"))
        async with http.post(
            f"{server}/api/v1/conversations/{other['messages'][0]['conversation_id']}/handoff",
            headers=ADMIN,
        ) as r:
            assert r.status == 409
            assert (await r.json())["error"]["code"] == "not_with_bot"

        # detaching the bot revokes its token
        async with http.delete(f"{server}/api/v1/inboxes/{inbox.id}/bot", headers=ADMIN) as r:
            assert r.status == 204
        async with http.get(
            f"{server}/api/v1/conversations/{conversation}",
            headers={"Authorization": f"Bearer {helper.token}"},
        ) as r:
            assert r.status == 401


async def _assigner_saw(hub: Hub, conversation: str) -> None:
    async with asyncio.timeout(15):
        while not await hub.pool.fetchval(
            """SELECT id FROM event_log WHERE type = 'conversation.created'
                AND conversation_id = $1""",
            conversation,
        ):
            await asyncio.sleep(0.05)
    await caught_up(hub, "assignment")


async def _event_of(hub: Hub, message_id: str) -> str:
    async with asyncio.timeout(15):
        while True:
            found: str | None = await hub.pool.fetchval(
                """SELECT id FROM event_log WHERE type = 'message.received'
                    AND event->'payload'->>'message_id' = $1""",
                message_id,
            )
            if found:
                return found
            await asyncio.sleep(0.05)


async def _fed(hub: Hub, event_id: str) -> None:
    """Until the bot feeder has handled the (journalled) event: it claims only the events of
    conversations a bot holds, so its lag says when it is done with the others."""
    assert await hub.pool.fetchval("SELECT 1 FROM event_log WHERE id = $1", event_id)
    await caught_up(hub, "agent-bots", within=15)
