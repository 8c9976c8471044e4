"""Conversation events carry what the inbox list shows (the conversation's row and its inbox's
counters), equal to what a fresh REST load returns; the REST list has the caller's unread counts."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from hub.app import Hub
from tests.realtime.agents import TOKEN, Agent
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_events_carry_the_inbox_list_and_match_a_fresh_load(hub: Hub, server: str) -> None:
    made = await ApiInbox.create(hub, server)
    agent = Agent()
    await agent.connect(server, token=TOKEN)
    async with aiohttp.ClientSession() as session:

        async def post(message_id: str, identifier: str) -> None:
            body = api_body(message_id, identifier=identifier, text=f"வணக்கம் {message_id}")
            await made.post(session, body)

        async def load() -> dict[str, Any]:
            async with session.get(
                f"{server}api/v1/conversations", params={"inbox_id": made.id}, headers=AUTH
            ) as response:
                assert response.status == 200
                loaded: dict[str, Any] = await response.json()
                return loaded

        for n, who in enumerate(["+94770000001", "+94770000002", "+94770000001"]):
            await post(f"c-{n}", who)
        await agent.wait_until(
            lambda: sum(e["type"] == "message.received" for e in agent.events) == 3
        )
        listed = await load()

        last = [e for e in agent.events if e["type"] == "message.received"][-1]
        context = last["context"]
        assert context["inbox"] == {
            "inbox_id": made.id,
            "open": 2,
            "pending": 0,
            "snoozed": 0,
            "unassigned": 2,
            "assigned": {},
        }
        assert listed["inboxes"] == [context["inbox"]], "the same counters as a fresh load"
        row = next(c for c in listed["data"] if c["id"] == context["conversation"]["id"])
        for field in ("status", "messages_count", "last_activity_at", "assignee_id"):
            assert context["conversation"][field] == row[field], field
        assert context["conversation"]["messages_count"] == 2
        assert sorted(c["unread_count"] for c in listed["data"]) == [1, 2]

        await agent.client.call(
            "mark_read", {"conversation_id": row["id"]}, namespace="/agent", timeout=10
        )
        after = await load()
        read_row = next(c for c in after["data"] if c["id"] == row["id"])
        assert read_row["unread_count"] == 0
        await post("c-3", "+94770000001")
        again = await load()
        assert next(c for c in again["data"] if c["id"] == row["id"])["unread_count"] == 1
    contact_events = [e for e in agent.events if e["type"].startswith("contact.")]
    assert contact_events and all(e["context"] is None for e in contact_events)
    await agent.client.disconnect()
