"""Inbound calls end to end: sipp calls the hub's voice inbox, the agent's console rings over
Socket.IO, the agent takes it, the hub rings the agent's phone (another sipp) and bridges them."""

from __future__ import annotations

import wave
from typing import Any

import pytest

from tests.support.processes import free_port
from tests.voice import sipp
from tests.voice.conftest import VoiceDesk

pytestmark = [pytest.mark.postgres, pytest.mark.sip]


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def _offered(agent: Any, within: float = 10) -> dict[str, Any]:
    await agent.wait_until(lambda: any(e["type"] == "call.offered" for e in agent.events), within)
    item = next(e for e in agent.events if e["type"] == "call.offered")
    event: dict[str, Any] = item["event"]
    return event


async def test_answered_call_is_on_the_timeline_with_its_duration(desk: VoiceDesk) -> None:
    inbox_id, port = await desk.voice_inbox(record=True, ring_seconds=10)
    phone_port = free_port()
    agent_id, agent_headers, agent = await desk.agent(inbox_id, phone_port)
    talk_ms = 2000
    async with (
        desk.phone(sipp.phone(), phone_port) as phone,
        desk.dial(
            sipp.caller(number="0771234567", display="Kamal", talk_ms=talk_ms), port, name="caller"
        ) as caller,
    ):
        offered = await _offered(agent)
        assert offered["payload"]["agent_id"] == agent_id
        call_id = offered["payload"]["call_id"]
        status, taken = await desk.api("POST", f"/api/v1/calls/{call_id}/accept", agent_headers)
        assert status == 200, taken
        assert await sipp.finished(caller, 20) == 0
        assert await sipp.finished(phone, 10) == 0

    conversation_id = offered["conversation_id"]
    events = await desk.timeline(conversation_id, "call.recording_ready")
    types = _types(events)
    for expected in ("call.ringing", "call.offered", "call.accepted", "call.answered",
                     "call.transferred", "call.ended", "call.recording_ready"):  # fmt: skip
        assert expected in types, types
    assert types.index("call.ringing") < types.index("call.answered") < types.index("call.ended")
    ringing = events[types.index("call.ringing")]["payload"]
    assert ringing["number"] == "+94771234567"  # normalised in the inbox's region (LK)
    answered = events[types.index("call.answered")]["payload"]
    assert answered == {**answered, "by": "agent", "agent_id": agent_id}
    transferred = events[types.index("call.transferred")]["payload"]
    assert transferred["method"] == "bridge" and transferred["target"].endswith(str(phone_port))
    ended = events[types.index("call.ended")]["payload"]
    assert ended["answered"] is True and ended["ended_by"] == "caller"
    assert ended["hangup_cause"].startswith("200")
    assert abs(ended["duration_s"] - talk_ms / 1000) < 0.5, ended

    # the recording is served to the agent like any attachment, and lasts as long as the talk
    recording = events[types.index("call.recording_ready")]["payload"]
    assert recording["kind"] == "call"
    async with desk.http.get(desk.url + recording["url"], headers=agent_headers) as response:
        assert response.status == 200
        wav = desk.workdir / "call.wav"
        wav.write_bytes(await response.read())
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert abs(seconds - recording["duration_s"]) < 0.05
    assert abs(seconds - talk_ms / 1000) < 0.5

    # the call is a message of the conversation, and the contact is the caller's number
    status, call = await desk.api("GET", f"/api/v1/calls/{call_id}", agent_headers)
    assert status == 200 and call["state"] == "ended" and call["agent_id"] == agent_id
    assert call["recording_url"] == recording["url"]
    status, messages = await desk.api(
        "GET", f"/api/v1/conversations/{conversation_id}/messages", agent_headers
    )
    assert [m["content_type"] for m in messages["data"]] == ["call"]
    await agent.client.disconnect()


def _voiced_span(path: Any, threshold: int = 500) -> float:
    """Seconds from the first to the last sample louder than ``threshold`` (16-bit mono)."""
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    samples = memoryview(frames).cast("h")
    loud = [i for i in range(0, len(samples), 8) if abs(samples[i]) > threshold]
    return (loud[-1] - loud[0]) / rate if loud else 0.0


async def test_declined_call_goes_to_voicemail_recorded_from_the_callers_audio(
    desk: VoiceDesk,
) -> None:
    """The only agent passes; the caller hears the beep, speaks (sipp plays a G.711 recording
    as RTP) and presses 1; the voicemail holds what was sent."""
    inbox_id, port = await desk.voice_inbox(ring_seconds=10)
    agent_id, agent_headers, agent = await desk.agent(inbox_id, free_port())
    async with desk.dial(
        sipp.caller(number="+94112345678", before_audio_ms=1000, dtmf="1", talk_ms=10_500),
        port,
        name="caller",
    ) as caller:
        offered = await _offered(agent)
        call_id = offered["payload"]["call_id"]
        status, _ = await desk.api("POST", f"/api/v1/calls/{call_id}/decline", agent_headers)
        assert status == 204
        # passing twice is refused: the call is no longer ringing for this agent
        status, refused = await desk.api("POST", f"/api/v1/calls/{call_id}/decline", agent_headers)
        assert status == 409 and refused["error"]["code"] == "not_offered"
        assert await sipp.finished(caller, 30) == 0

    events = await desk.timeline(offered["conversation_id"], "call.recording_ready")
    types = _types(events)
    declined = events[types.index("call.declined")]
    assert declined["payload"]["reason"] == "declined" and declined["actor"]["id"] == agent_id
    assert events[types.index("call.voicemail")]["payload"]["reason"] == "declined"
    assert events[types.index("call.answered")]["payload"]["by"] == "voicemail"
    assert [e["payload"]["digit"] for e in events if e["type"] == "call.dtmf"] == ["1"]
    recording = events[types.index("call.recording_ready")]["payload"]
    assert recording["kind"] == "voicemail"
    async with desk.http.get(desk.url + recording["url"], headers=agent_headers) as response:
        assert response.status == 200 and response.content_type == "audio/wav"
        wav = desk.workdir / "voicemail.wav"
        wav.write_bytes(await response.read())
    sent = sipp.pcap_voiced_span(sipp.AUDIO_PCAP)
    heard = _voiced_span(wav)
    assert abs(heard - sent) < 0.15, (heard, sent)
    status, call = await desk.api("GET", f"/api/v1/calls/{call_id}", agent_headers)
    assert call["voicemail_url"] == recording["url"] and call["state"] == "ended"
    await agent.client.disconnect()


async def test_no_agent_online_means_voicemail_and_without_voicemail_480(desk: VoiceDesk) -> None:
    _, port = await desk.voice_inbox(voicemail=False)
    async with desk.dial(
        sipp.caller(number="0771234567", answer_ms=10_000), port, name="caller"
    ) as caller:
        # the caller's scenario expects an answer: a 480 fails it, which is the point
        assert await sipp.finished(caller, 20) != 0
    errors = (desk.workdir / "caller-errors.log").read_text()
    assert "480" in errors, errors
    rows = await desk.settled()
    assert [(r["state"], r["agent_id"]) for r in rows] == [("ended", None)]
    assert rows[0]["hangup_cause"].startswith("480")


async def test_ivr_digit_routes_the_call_to_that_teams_agent(desk: VoiceDesk) -> None:
    """Press 1 for sales: the call rings for the sales team's agent, not for another agent of
    the inbox who is online too."""
    status, team = await desk.api("POST", "/api/v1/teams", name="Sales")
    assert status == 201, team
    inbox_id, port = await desk.voice_inbox(ivr=[f"1={team['id']}"], ivr_wait_seconds=5)
    other_id, _, other = await desk.agent(inbox_id, free_port())
    sales_id, _, sales = await desk.agent(inbox_id, free_port())
    status, _ = await desk.api("PUT", f"/api/v1/teams/{team['id']}/members", user_ids=[sales_id])
    assert status == 200
    async with desk.dial(
        sipp.caller(number="0771234567", dtmf="1", talk_ms=2500), port, name="caller"
    ) as caller:
        offered = await _offered(sales)
        assert offered["payload"]["agent_id"] == sales_id
        assert await sipp.finished(caller, 20) == 0
    events = await desk.timeline(offered["conversation_id"], "call.ended")
    types = _types(events)
    assert events[types.index("call.answered")]["payload"]["by"] == "ivr"
    assert types.index("call.dtmf") < types.index("call.offered")
    assert [e["payload"]["agent_id"] for e in events if e["type"] == "call.offered"] == [sales_id]
    # the other agent sees the call on the inbox's timeline, but it never rang for them
    assert [
        e["event"]["payload"]["agent_id"] for e in other.events if e["type"] == "call.offered"
    ] == [sales_id], other_id
    await sales.client.disconnect()
    await other.client.disconnect()
