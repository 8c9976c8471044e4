"""Macros end to end: an agent runs one on a conversation and its actions are applied through the
core's actions with the macro as actor (on the timeline, the run in the audit log); invalid and
cyclic macros are refused at save; a macro whose agent was disabled turns off with the reason."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from hub.app import Hub
from tests.automation.conftest import ADMIN
from tests.automation.test_rules import agent, labels
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


async def save(
    http: aiohttp.ClientSession, server: str, body: dict[str, Any], macro_id: str | None = None
) -> tuple[int, dict[str, Any]]:
    if macro_id is None:
        call = http.post(f"{server}/api/v1/macros", json=body, headers=ADMIN)
    else:
        call = http.patch(f"{server}/api/v1/macros/{macro_id}", json=body, headers=ADMIN)
    async with call as r:
        return r.status, await r.json()


async def conversation(hub: Hub, server: str, http: aiohttp.ClientSession) -> str:
    inbox = await ApiInbox.create(hub, server)
    answer = await inbox.post(http, api_body("m-1", text="my order is late"))
    found: str = answer["messages"][0]["conversation_id"]
    return found


async def run(
    http: aiohttp.ClientSession, server: str, conversation_id: str, macro_id: str
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"{server}/api/v1/conversations/{conversation_id}/macros/{macro_id}", headers=ADMIN
    ) as r:
        return r.status, await r.json()


async def test_a_macro_applies_its_actions_as_the_macro(hub: Hub, server: str) -> None:
    await labels(hub, "escalated", "late")
    async with aiohttp.ClientSession() as http:
        status, inner = await save(
            http,
            server,
            {"name": "Tag late", "actions": [{"type": "add_labels", "value": ["late"]}]},
        )
        assert status == 201, inner
        status, macro = await save(
            http,
            server,
            {
                "name": "Escalate",
                "actions": [
                    {"type": "add_labels", "value": ["escalated"]},
                    {"type": "set_priority", "value": "urgent"},
                    {"type": "private_note", "value": "Escalated by macro"},
                    {"type": "run_macro", "value": inner["id"]},
                ],
            },
        )
        assert status == 201, macro
        assert macro["enabled"] is True and macro["disabled_reason"] is None
        conversation_id = await conversation(hub, server, http)
        status, ran = await run(http, server, conversation_id, macro["id"])
        assert status == 200, ran
        assert ran == {"macro_id": macro["id"], "conversation_id": conversation_id, "actions": 4}

        row = await hub.pool.fetchrow(
            "SELECT labels, priority FROM conversations WHERE id = $1", conversation_id
        )
        assert row is not None
        assert sorted(row["labels"]) == ["escalated", "late"] and row["priority"] == "urgent"
        note = await hub.pool.fetchrow(
            "SELECT sender_type, sender_id, content FROM messages WHERE private"
            " AND conversation_id = $1",
            conversation_id,
        )
        assert note is not None
        assert tuple(note) == ("integration", macro["id"], "Escalated by macro")

        # on the timeline (changes; the note is a message) with the macro as actor
        async with asyncio.timeout(15):
            while True:
                async with http.get(
                    f"{server}/api/v1/conversations/{conversation_id}/events", headers=ADMIN
                ) as r:
                    actors = [e["actor"] for e in (await r.json())["data"]]
                if actors.count({"kind": "integration", "id": macro["id"]}) == 1:
                    break
                await asyncio.sleep(0.05)
        # the run in the audit log, by the caller
        audit = await hub.pool.fetchrow(
            "SELECT actor_type, actor_id, details FROM audit_log WHERE action = 'macro.run'"
        )
        assert audit is not None
        assert audit["actor_type"] == "api_token" and audit["actor_id"] == "tests-admin"
        assert audit["details"]["conversation_id"] == conversation_id


async def test_invalid_and_cyclic_macros_are_refused_at_save(hub: Hub, server: str) -> None:
    async with aiohttp.ClientSession() as http:
        for actions, path in [
            ([{"type": "add_labels", "value": ["no-such-label"]}], "$.actions[0]"),
            ([{"type": "assign_agent", "value": "nobody"}], "$.actions[0]"),
            ([{"type": "send_webhook", "value": "x"}], "$.actions[0]"),
            ([{"type": "run_macro", "value": "no-such-macro"}], "$.actions[0]"),
        ]:
            status, body = await save(http, server, {"name": "Bad", "actions": actions})
            assert status == 422, body
            assert body["error"]["code"] == "invalid_macro"
            assert body["error"]["details"] == {"path": path}
        status, body = await save(http, server, {"name": "Bad", "actions": [{"type": "fly"}]})
        assert status == 422 and body["error"]["code"] == "invalid_body"

        note = [{"type": "private_note", "value": "a"}]
        _, a = await save(http, server, {"name": "A", "actions": note})
        _, b = await save(
            http, server, {"name": "B", "actions": [{"type": "run_macro", "value": a["id"]}]}
        )
        _, c = await save(
            http, server, {"name": "C", "actions": [{"type": "run_macro", "value": b["id"]}]}
        )
        # A -> C -> B -> A
        status, body = await save(
            http, server, {"actions": [{"type": "run_macro", "value": c["id"]}]}, a["id"]
        )
        assert status == 422, body
        assert "would run itself" in body["error"]["message"]
        status, body = await save(
            http, server, {"actions": [{"type": "run_macro", "value": a["id"]}]}, a["id"]
        )
        assert status == 422, body
        # nothing changed
        async with http.get(f"{server}/api/v1/macros/{a['id']}", headers=ADMIN) as r:
            assert (await r.json())["actions"] == note
        status, body = await save(http, server, {"name": "A", "actions": note})
        assert status == 409


async def test_a_macro_on_a_disabled_agent_turns_off_with_the_reason(hub: Hub, server: str) -> None:
    user_id = await agent(hub, "Nimali")
    async with aiohttp.ClientSession() as http:
        status, macro = await save(
            http,
            server,
            {"name": "To Nimali", "actions": [{"type": "assign_agent", "value": user_id}]},
        )
        assert status == 201, macro
        await hub.pool.execute("UPDATE users SET disabled_at = now() WHERE id = $1", user_id)
        conversation_id = await conversation(hub, server, http)
        status, body = await run(http, server, conversation_id, macro["id"])
        assert status == 409, body
        assert body["error"]["code"] == "macro_disabled"
        assert "no such enabled user" in body["error"]["message"]
        async with http.get(f"{server}/api/v1/macros", headers=ADMIN) as r:
            (listed,) = (await r.json())["data"]
        assert listed["enabled"] is False
        assert "no such enabled user" in listed["disabled_reason"]
        assert (
            await hub.pool.fetchval(
                "SELECT count(*) FROM audit_log WHERE action = 'macro.disabled' AND object_id = $1",
                macro["id"],
            )
            == 1
        )
        assert (
            await hub.pool.fetchval(
                "SELECT assignee_id FROM conversations WHERE id = $1", conversation_id
            )
            is None
        )
        # still off on the next try; saving it again with a working action turns it back on
        status, body = await run(http, server, conversation_id, macro["id"])
        assert status == 409
        status, saved = await save(
            http, server, {"actions": [{"type": "set_priority", "value": "low"}]}, macro["id"]
        )
        assert status == 200 and saved["enabled"] is True, saved
        status, body = await run(http, server, conversation_id, macro["id"])
        assert status == 200, body
