"""Voice calls over REST: take or pass on a ringing call, call a contact back, read a call, and
see how a voice inbox's SIP accounts are registered. The console rings on the ``call.offered``
event of its socket stream and answers through these routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import record_id, refusal
from hub.actions import calls
from hub.actions.calls import CallRefused
from hub.authz import Permission


class CallInfo(msgspec.Struct):
    id: str
    inbox_id: str
    conversation_id: str
    contact_id: str
    direction: str
    number: str
    #: requested, ringing, offered, connecting, answered, voicemail, ended
    state: str
    agent_id: str | None
    team_id: str | None
    offered_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    hangup_cause: str | None
    recording_url: str | None
    voicemail_url: str | None
    created_at: datetime


class CallList(msgspec.Struct):
    data: list[CallInfo]


class Registration(msgspec.Struct):
    account: str
    registered: bool
    status_code: int | None
    reason: str | None
    expires_s: int | None
    updated_at: datetime


class VoiceStatus(msgspec.Struct):
    inbox_id: str
    mode: str
    registrations: list[Registration]
    active_calls: int


_SELECT = """SELECT id, inbox_id, conversation_id, contact_id, direction, number, state, agent_id,
                    team_id, offered_at, answered_at, ended_at, duration_ms, hangup_cause,
                    recording_key, voicemail_key, created_at
               FROM calls"""


def _info(row: Any) -> CallInfo:
    def url(key: str | None) -> str | None:
        return f"/api/v1/media/{key}" if key else None

    duration = row["duration_ms"]
    return CallInfo(
        id=row["id"],
        inbox_id=row["inbox_id"],
        conversation_id=row["conversation_id"],
        contact_id=row["contact_id"],
        direction=row["direction"],
        number=row["number"],
        state=row["state"],
        agent_id=row["agent_id"],
        team_id=row["team_id"],
        offered_at=row["offered_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        duration_s=duration / 1000 if duration is not None else None,
        hangup_cause=row["hangup_cause"],
        recording_url=url(row["recording_key"]),
        voicemail_url=url(row["voicemail_key"]),
        created_at=row["created_at"],
    )


def _agent(call: Call) -> str:
    """Calls are taken and made by a user with a phone, not by an account-wide token."""
    if call.principal.user_id is None:
        raise ApiError(403, "agent_only", "calls are taken and made by agents, not account tokens")
    return call.principal.user_id


async def _answering(call: Call) -> tuple[str, str]:
    """The call of the path (404 unless its inbox is visible) and the agent answering it."""
    call_id = record_id(call, "call_id")
    await _visible_call(call, call_id)
    return call_id, _agent(call)


async def _visible_call(call: Call, call_id: str) -> Any:
    row = await call.hub.pool.fetchrow(
        f"{_SELECT} WHERE id = $1 AND account_id = $2", call_id, call.principal.account_id
    )
    if row is None:
        raise ApiError(404, "not_found", "no such call")
    call.authorize(row["inbox_id"])
    return row


@route(
    "GET",
    "/api/v1/calls/{call_id}",
    permission=Permission.CONVERSATIONS_READ,
    summary="A call: its state, agent, duration and recordings",
    tag="calls",
    reply=CallInfo,
)
async def get_call_route(call: Call) -> CallInfo:
    return _info(await _visible_call(call, record_id(call, "call_id")))


@route(
    "POST",
    "/api/v1/calls/{call_id}/accept",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Take the call ringing for you: the hub rings your phone and connects the caller",
    tag="calls",
    reply=CallInfo,
    errors=(409,),
)
async def accept_call_route(call: Call) -> CallInfo:
    """409 when the call is not (or no longer) offered to the caller of this route."""
    call_id, agent_id = await _answering(call)
    try:
        await calls.accept(call.hub.pool, call.principal.account_id, call_id, agent_id)
    except CallRefused as exc:
        raise refusal(exc) from exc
    return _info(await _visible_call(call, call_id))


@route(
    "POST",
    "/api/v1/calls/{call_id}/decline",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Pass on the call ringing for you: it is offered to the next agent, or voicemail",
    tag="calls",
    status=204,
    errors=(409,),
)
async def decline_call_route(call: Call) -> Reply:
    call_id, agent_id = await _answering(call)
    try:
        await calls.decline(
            call.hub.pool, call.principal.account_id, call_id, agent_id, "declined", by_agent=True
        )
    except CallRefused as exc:
        raise refusal(exc) from exc
    return Reply(None, 204)


@route(
    "GET",
    "/api/v1/conversations/{conversation_id}/calls",
    permission=Permission.CONVERSATIONS_READ,
    summary="A conversation's calls, newest first",
    tag="calls",
    reply=CallList,
)
async def list_calls_route(call: Call) -> CallList:
    conversation_id = record_id(call, "conversation_id")
    inbox_id = await call.hub.pool.fetchval(
        "SELECT inbox_id FROM conversations WHERE id = $1 AND account_id = $2",
        conversation_id,
        call.principal.account_id,
    )
    if inbox_id is None:
        raise ApiError(404, "not_found", "no such conversation")
    call.authorize(inbox_id)
    rows = await call.hub.pool.fetch(
        f"{_SELECT} WHERE conversation_id = $1 ORDER BY created_at DESC LIMIT 200",
        conversation_id,
    )
    return CallList([_info(r) for r in rows])


@route(
    "POST",
    "/api/v1/conversations/{conversation_id}/calls",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Click-to-call: ring your phone, then the contact, and join you",
    tag="calls",
    reply=CallInfo,
    status=201,
    errors=(409,),
)
async def start_call_route(call: Call) -> CallInfo:
    """The conversation must be in a voice inbox, the contact must have a phone number and you
    a phone (``sip_uri`` in your profile); 409 while you are on a call."""
    who = call.principal
    agent_id = _agent(call)
    try:
        record = await calls.request_outbound(
            call.hub.pool,
            account_id=who.account_id,
            agent_id=agent_id,
            conversation_id=record_id(call, "conversation_id"),
            inboxes=who.inboxes,
        )
    except CallRefused as exc:
        raise refusal(exc) from exc
    return _info(await _visible_call(call, record.id))


@route(
    "GET",
    "/api/v1/inboxes/{inbox_id}/voice",
    permission=Permission.INBOXES_MANAGE,
    summary="A voice inbox's SIP registrations (as the voice process last saw them) and calls",
    tag="inboxes",
    reply=VoiceStatus,
    errors=(422,),
)
async def voice_status_route(call: Call) -> VoiceStatus:
    inbox_id = record_id(call, "inbox_id")
    pool = call.hub.pool
    inbox = await pool.fetchrow(
        "SELECT channel, settings FROM inboxes WHERE id = $1 AND account_id = $2",
        inbox_id,
        call.principal.account_id,
    )
    if inbox is None:
        raise ApiError(404, "not_found", "no such inbox")
    if inbox["channel"] != "sip":
        raise ApiError(422, "not_voice", "this is not a voice (SIP) inbox")
    rows = await pool.fetch(
        """SELECT account_uri, registered, status_code, reason, expires_s, updated_at
             FROM sip_registrations WHERE inbox_id = $1 ORDER BY account_uri""",
        inbox_id,
    )
    active = await pool.fetchval(
        "SELECT count(*) FROM calls WHERE inbox_id = $1 AND state <> 'ended'", inbox_id
    )
    return VoiceStatus(
        inbox_id=inbox_id,
        mode=str(inbox["settings"].get("mode", "listen")),
        registrations=[
            Registration(
                account=r["account_uri"],
                registered=r["registered"],
                status_code=r["status_code"],
                reason=r["reason"],
                expires_s=r["expires_s"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ],
        active_calls=int(active),
    )


ROUTES = [
    get_call_route,
    accept_call_route,
    decline_call_route,
    list_calls_route,
    start_call_route,
    voice_status_route,
]
