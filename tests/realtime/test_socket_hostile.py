"""Every event of the /agent namespace, walked with hostile values (as schemathesis walks the REST
API): each call is acked with an error code, the socket stays connected, and nothing goes
unhandled in the hub (no "Task exception was never retrieved", no logged error)."""

from __future__ import annotations

import gc
import logging
from typing import Any

import aiohttp
import pytest

from hub.app import Hub
from tests.realtime.agents import TOKEN, Agent
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres

MISSING = object()  # the event sent with no data at all

#: values no field of any event takes
HOSTILE: list[Any] = [
    None,
    5,
    -1,
    2**80,
    1.5,
    True,
    "",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "x" * 100_000,
    [],
    ["a", None],
    {},
    {"conversation_id": {"$gt": ""}},
    [[[[[[[[[[["deep"]]]]]]]]]]],
]
#: whole payloads that are not an event's object
PAYLOADS: list[Any] = [MISSING, 5, "conversation", "\x00", "\udc00", [], [{"a": 1}], True]


def valid(event: str, conversation_id: str, message_id: str) -> dict[str, Any]:
    by_event: dict[str, dict[str, Any]] = {
        "presence": {"status": "online"},
        "join": {"conversation_id": conversation_id},
        "leave": {"conversation_id": conversation_id},
        "send_message": {"conversation_id": conversation_id, "content": "hi", "client_id": "k"},
        "mark_read": {"conversation_id": conversation_id, "message_id": message_id},
        "typing": {"conversation_id": conversation_id, "on": True},
    }
    return by_event[event]


#: fields that may be left out (None is their "not given")
OPTIONAL = {("send_message", "client_id"), ("mark_read", "message_id")}


async def test_every_agent_event_acks_hostile_values_with_an_error(
    hub: Hub, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = await ApiInbox.create(hub, server)
    async with aiohttp.ClientSession() as session:
        conversation_id = (await inbox.post(session, api_body("h-1")))["messages"][0][
            "conversation_id"
        ]
    message_id = await hub.pool.fetchval("SELECT id FROM messages")
    agent = Agent()
    await agent.connect(server, token=TOKEN)
    caplog.set_level(logging.WARNING)

    async def call(event: str, data: Any) -> Any:
        if data is MISSING:
            return await agent.client.call(event, namespace="/agent", timeout=10)
        return await agent.client.call(event, data, namespace="/agent", timeout=10)

    calls = 0
    for event in ("presence", "join", "leave", "send_message", "mark_read", "typing"):
        base = valid(event, conversation_id, message_id)
        for data in PAYLOADS:
            answer = await call(event, data)
            calls += 1
            assert isinstance(answer["error"]["code"], str), (event, data, answer)
        for field in base:
            for value in HOSTILE:
                if value is None and (event, field) in OPTIONAL:
                    continue
                answer = await call(event, {**base, field: value})
                calls += 1
                assert isinstance(answer, dict) and "error" in answer, (event, field, value, answer)
                assert isinstance(answer["error"]["code"], str) and answer["error"]["message"]
                assert "id" not in answer
            # an unknown field is ignored, as before; a hostile one does no harm either
            await call(event, {**base, "extra\x00": "\ud800"})
            calls += 1
        assert agent.client.connected, event
    assert calls > 200
    # still usable: the real thing works on the same socket
    assert (await call("join", {"conversation_id": conversation_id})) == {"ok": True}
    sent = await call("send_message", {"conversation_id": conversation_id, "content": "fine"})
    assert sent["ok"] is True
    gc.collect()  # an unretrieved task exception is logged when the task is collected
    problems = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR or "never retrieved" in r.getMessage()
    ]
    assert problems == []
    await agent.client.disconnect()
    assert (
        await hub.pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 1
    )
