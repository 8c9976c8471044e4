"""3CX's CRM integration: contact lookup by number, contact creation and call journaling, called
over HTTP as 3CX's template calls them (no SIP traffic: 3CX handled these calls itself)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.actions.setup import hash_token
from hub.ids import new_id
from tests.api.admin_support import make_user
from tests.voice.conftest import ADMIN, VoiceDesk

pytestmark = pytest.mark.postgres

LOOKUP = "/api/v1/integrations/3cx/lookup"
JOURNAL = "/api/v1/integrations/3cx/journal"
CONTACTS = "/api/v1/integrations/3cx/contacts"


async def _get(desk: VoiceDesk, query: str, headers: dict[str, str] | None = None) -> Any:
    """``query`` goes on the URL as written (3CX does not always escape a ``+``)."""
    sent = ADMIN if headers is None else headers
    async with desk.http.get(f"{desk.url}{LOOKUP}?{query}", headers=sent) as response:
        return response.status, await response.json()


async def _contact(desk: VoiceDesk) -> str:
    status, contact = await desk.api(
        "POST",
        "/api/v1/contacts",
        name="Nimal Perera",
        identities=[
            {"channel": "phone", "address": "+94771234567"},
            {"channel": "email", "address": "nimal@example.com"},
        ],
    )
    assert status == 201, contact
    return str(contact["id"])


async def _ended_twice(desk: VoiceDesk, conversation_id: str) -> list[Any]:
    """The conversation's call events once two call.ended are among them."""
    async with asyncio.timeout(30):
        while True:
            events = await desk.timeline(conversation_id, "call.ended")
            if sum(e["type"] == "call.ended" for e in events) >= 2:
                return events
            await asyncio.sleep(0.1)


def _call(**overrides: Any) -> dict[str, Any]:
    entry = {
        "number": "0771234567",
        "call_type": "Inbound",
        "started_at": "2026-11-20T08:15:00Z",
        "duration": "00:01:23",
        "agent": "101",
        "agent_email": "[AgentEmail]",  # what 3CX sends for a variable it cannot fill
        "name": "Nimal",
        "inbox_id": "",
    }
    entry.update(overrides)
    return entry


async def test_lookup_finds_the_contact_by_any_spelling_of_the_number(desk: VoiceDesk) -> None:
    await desk.voice_inbox()  # its default_region (LK) reads national numbers
    contact_id = await _contact(desk)
    spellings = (
        "number=0771234567",
        "number=%2B94771234567",
        "number=+94771234567",  # an unescaped "+" reads as a space
        "number=077+123+4567&region=",  # a blank Region parameter of the template
    )
    for query in spellings:
        status, found = await _get(desk, query)
        assert status == 200, (query, found)
        assert found == {
            "contacts": [
                {
                    "id": contact_id,
                    "name": "Nimal Perera",
                    "first_name": "Nimal",
                    "last_name": "Perera",
                    "phone": "+94771234567",
                    "email": "nimal@example.com",
                    "url": f"{desk.url.rstrip('/')}/#/contacts/{contact_id}",
                }
            ]
        }, query


async def test_unknown_number_is_an_empty_list_and_a_bad_one_a_400(desk: VoiceDesk) -> None:
    status, found = await _get(desk, "number=%2B94112345678")
    assert (status, found) == (200, {"contacts": []})
    # no voice inbox: a national number needs the region
    status, error = await _get(desk, "number=0771234567")
    assert status == 400 and error["error"]["code"] == "invalid_number", error
    await _contact(desk)
    status, found = await _get(desk, "number=0771234567&region=lk")
    assert status == 200 and len(found["contacts"]) == 1, found
    for query in ("number=not-a-number", "number=12", "number=0771234567&region=ZZ", "nmbr=1"):
        status, error = await _get(desk, query)
        assert status == 400 and error["error"]["code"] in (
            "invalid_number",
            "invalid_parameter",
        ), (query, error)


async def test_an_unknown_caller_becomes_a_contact_once(desk: VoiceDesk) -> None:
    await desk.voice_inbox()
    status, made = await desk.api("POST", CONTACTS, number="0779876543", name="[Name]")
    assert status == 201, made
    [contact] = made["contacts"]
    assert contact["phone"] == "+94779876543" and contact["name"] is None, contact
    status, again = await desk.api("POST", CONTACTS, number="+94779876543", name="Sunil")
    assert (status, again) == (200, made)
    status, found = await _get(desk, "number=%2B94779876543")
    assert found == made
    status, error = await desk.api("POST", CONTACTS, number="not a number")
    assert status == 422 and error["error"]["code"] == "invalid_number", error
    status, error = await desk.api("POST", CONTACTS, number="0779876543", region="ZZ")
    assert status == 422 and error["error"]["code"] == "invalid_body", error


async def test_a_journalled_call_is_stored_once_however_often_3cx_posts_it(
    desk: VoiceDesk,
) -> None:
    inbox_id, _ = await desk.voice_inbox()
    contact_id = await _contact(desk)
    agent_id, agent_headers = await make_user(desk.hub, inboxes=[inbox_id], name="Agent")
    status, profile = await desk.api(
        "PATCH", "/api/v1/profile", agent_headers, sip_uri="sip:101@pbx.example.com"
    )
    assert status == 200, profile

    status, first = await desk.api("POST", JOURNAL, **_call())
    assert status == 201, first
    assert first["duplicate"] is False and first["contact_id"] == contact_id
    assert first["agent_id"] == agent_id
    status, again = await desk.api("POST", JOURNAL, **_call(started_at="2026-11-20T13:45:00+05:30"))
    assert status == 200, again
    assert again == {**first, "duplicate": True}

    conversation_id = first["conversation_id"]
    status, messages = await desk.api("GET", f"/api/v1/conversations/{conversation_id}/messages")
    assert status == 200, messages
    calls = [m for m in messages["data"] if m["content_type"] == "call"]
    assert [m["content"] for m in calls] == [
        "Call from +94771234567 answered by extension 101 (1:23)"
    ], calls
    status, stored = await desk.api("GET", f"/api/v1/calls/{first['call_id']}")
    assert status == 200, stored
    assert stored["state"] == "ended" and stored["direction"] == "inbound", stored
    assert stored["duration_s"] == 83 and stored["agent_id"] == agent_id, stored
    assert stored["answered_at"] is not None and stored["inbox_id"] == inbox_id, stored

    # a later call in the same conversation: once its call.ended is on the timeline, a second
    # call.ended of the first call would be there before it
    status, missed = await desk.api(
        "POST",
        JOURNAL,
        **_call(call_type="Missed", started_at="2026-11-20T09:00:00Z", duration="00:00:00"),
    )
    assert status == 201 and missed["conversation_id"] == conversation_id, missed
    events = await _ended_twice(desk, conversation_id)
    ended = [e["payload"] for e in events if e["type"] == "call.ended"]
    assert [(p["call_id"], p["answered"], p["duration_s"]) for p in ended] == [
        (first["call_id"], True, 83.0),
        (missed["call_id"], False, 0.0),
    ], ended
    assert all(e["type"] == "call.ended" for e in events), events  # no ringing for a journal


async def test_outbound_calls_and_the_pbx_call_id(desk: VoiceDesk) -> None:
    await desk.voice_inbox()
    await make_user(desk.hub, email="someone@example.com")  # a cleared phone matches no ""
    await desk.hub.pool.execute("UPDATE users SET sip_uri = ''")
    agent_id, _ = await make_user(desk.hub, email="desk@example.com")
    status, out = await desk.api(
        "POST",
        JOURNAL,
        **_call(
            call_type="Notanswered",
            number="+919812345678",
            call_id="3cx-42",
            agent="",
            agent_email="DESK@example.com",
        ),
    )
    assert status == 201 and out["agent_id"] == agent_id, out
    # the same PBX call id is the same call, whatever else the report says
    status, again = await desk.api(
        "POST", JOURNAL, **_call(call_type="Notanswered", number="+919812345678", call_id="3cx-42")
    )
    assert status == 200 and again["call_id"] == out["call_id"], again
    # ... but the same id for another number or direction is not that call: refused, and the
    # answer tells nothing of the first
    for other in ({"number": "+919812345679"}, {"call_type": "Missed"}):
        status, refused = await desk.api(
            "POST", JOURNAL, **_call(**{"call_type": "Notanswered", **other, "call_id": "3cx-42"})
        )
        assert status == 422 and refused["error"]["code"] == "idempotency_key_reused", refused
        assert out["call_id"] not in str(refused) and out["message_id"] not in str(refused)
    assert await desk.hub.pool.fetchval("SELECT count(*) FROM calls") == 1
    assert await desk.hub.pool.fetchval("SELECT count(*) FROM contacts") == 1
    status, stored = await desk.api("GET", f"/api/v1/calls/{out['call_id']}")
    assert stored["direction"] == "outbound" and stored["number"] == "+919812345678", stored
    assert stored["answered_at"] is None and stored["duration_s"] == 0, stored


async def test_bad_journal_entries_are_refused(desk: VoiceDesk) -> None:
    status, error = await desk.api("POST", JOURNAL, **_call())
    assert status == 422 and error["error"]["code"] == "no_voice_inbox", error
    await desk.voice_inbox()
    for overrides, code in (
        ({"number": "abc"}, "invalid_number"),
        ({"call_type": "Internal"}, "invalid_body"),
        ({"duration": "an hour"}, "invalid_body"),
        ({"started_at": "1999-12-31T23:59:59Z"}, "invalid_body"),
        ({"agent": "1 0 1"}, "invalid_body"),
        ({"region": "ZZ"}, "invalid_body"),
        ({"inbox_id": "no-such-inbox"}, "not_found"),
    ):
        status, error = await desk.api("POST", JOURNAL, **_call(**overrides))
        assert status in (404, 422) and error["error"]["code"] == code, (overrides, error)
    assert await desk.hub.pool.fetchval("SELECT count(*) FROM calls") == 0


async def test_the_routes_need_their_permissions(desk: VoiceDesk) -> None:
    inbox_id, _ = await desk.voice_inbox()
    await _contact(desk)
    assert (await _get(desk, "number=%2B94771234567", headers={}))[0] == 401
    status, _ = await desk.api("POST", JOURNAL, {"X-No-Token": "1"}, **_call())
    assert status == 401
    # a personal token narrowed to contacts:read may look up, not journal
    user_id, _ = await make_user(desk.hub, inboxes=[inbox_id])
    token = f"scoped-{new_id()}"
    await desk.hub.pool.execute(
        """INSERT INTO api_tokens (id, account_id, user_id, name, role, token_hash, scopes)
           VALUES ($1, $2, $3, '3cx', 'agent', $4, '{contacts:read}')""",
        new_id(),
        desk.hub.account_id,
        user_id,
        hash_token(token),
    )
    scoped = {"Authorization": f"Bearer {token}"}
    status, found = await _get(desk, "number=%2B94771234567", headers=scoped)
    assert status == 200 and len(found["contacts"]) == 1, found
    status, error = await desk.api("POST", JOURNAL, scoped, **_call())
    assert status == 403, error
    status, error = await desk.api("POST", CONTACTS, scoped, number="+94770000000")
    assert status == 403, error
    # an agent outside the voice inbox: it is not theirs to name, and they have none to default to
    _, outsider = await make_user(desk.hub)
    status, error = await desk.api("POST", JOURNAL, outsider, **_call(inbox_id=inbox_id))
    assert status == 404, error
    status, error = await desk.api("POST", JOURNAL, outsider, **_call())
    assert status == 422 and error["error"]["code"] == "no_voice_inbox", error
    assert await desk.hub.pool.fetchval("SELECT count(*) FROM calls") == 0
