"""Click-to-call: an agent calls back a missed caller from the conversation. The hub rings the
agent's phone, then the customer (through the PBX address of the inbox), and joins them."""

from __future__ import annotations

import pytest

from tests.support.processes import free_port
from tests.voice import sipp
from tests.voice.conftest import VoiceDesk

pytestmark = [pytest.mark.postgres, pytest.mark.sip]


async def test_agent_calls_back_a_missed_caller(desk: VoiceDesk) -> None:
    customer_port, phone_port = free_port(), free_port()
    inbox_id, port = await desk.voice_inbox(voicemail=False, pbx=f"127.0.0.1:{customer_port}")
    # a missed call (nobody online, no voicemail: 480) leaves a conversation with the caller
    async with desk.dial(
        sipp.caller(number="0771234567", answer_ms=10_000), port, name="missed"
    ) as missed:
        await sipp.finished(missed, 20)
    (missed_call,) = await desk.settled()
    conversation_id = missed_call["conversation_id"]

    agent_id, agent_headers, agent = await desk.agent(inbox_id, phone_port)
    talk_ms = 1500
    async with (
        desk.phone(sipp.phone(), phone_port) as phone,
        desk.phone(sipp.callee(talk_ms=talk_ms), customer_port, "customer") as customer,
    ):
        status, call = await desk.api(
            "POST", f"/api/v1/conversations/{conversation_id}/calls", agent_headers
        )
        assert status == 201, call
        assert call["direction"] == "outbound" and call["number"] == "+94771234567"
        # one call at a time: a second click while this one is on is refused
        status, refused = await desk.api(
            "POST", f"/api/v1/conversations/{conversation_id}/calls", agent_headers
        )
        assert status == 409 and refused["error"]["code"] == "on_a_call"
        assert await sipp.finished(customer, 20) == 0
        assert await sipp.finished(phone, 10) == 0

    events = await desk.timeline(conversation_id, "call.ended", count=2)  # missed, then this
    mine = [e for e in events if e["payload"]["call_id"] == call["id"]]
    types = [e["type"] for e in mine]
    assert types[0] == "call.requested" and mine[0]["actor"]["id"] == agent_id
    assert types.index("call.ringing") < types.index("call.answered") < types.index("call.ended")
    assert mine[types.index("call.ringing")]["payload"]["direction"] == "outbound"
    ended = mine[types.index("call.ended")]["payload"]
    assert ended["answered"] is True and ended["ended_by"] == "customer"
    assert abs(ended["duration_s"] - talk_ms / 1000) < 0.5, ended
    status, done = await desk.api("GET", f"/api/v1/calls/{call['id']}", agent_headers)
    assert done["state"] == "ended" and done["agent_id"] == agent_id
    await agent.client.disconnect()


async def test_click_to_call_needs_a_phone(desk: VoiceDesk) -> None:
    inbox_id, port = await desk.voice_inbox(voicemail=False, pbx="127.0.0.1:5999")
    async with desk.dial(
        sipp.caller(number="0771234567", answer_ms=10_000), port, name="missed"
    ) as missed:
        await sipp.finished(missed, 20)
    (missed_call,) = await desk.settled()
    _, headers, agent = await desk.agent(inbox_id, None)
    status, refused = await desk.api(
        "POST", f"/api/v1/conversations/{missed_call['conversation_id']}/calls", headers
    )
    assert status == 422 and refused["error"]["code"] == "no_phone"
    assert await desk.hub.pool.fetchval("SELECT count(*) FROM calls") == 1
    await agent.client.disconnect()
