"""Calls: every change of a call's state, each with its event on the conversation's timeline, in
one transaction.

A call enters like a message: the voice process ingests a message of content type ``call``
(provider id ``call:<SIP Call-ID>``), so the caller is resolved to a contact, the call threads
into their conversation, and a retransmitted INVITE is stored once. Then the ``calls`` row and
``call.*`` events follow it. Agents' decisions (accept, decline, click-to-call) are actions too;
the voice process hears of them on the bus.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import asyncpg

from hub.events import Actor, ActorKind, make_event
from hub.events.envelope import Payload
from hub.events.types import (
    CallAccepted,
    CallAnswered,
    CallDeclined,
    CallDirection,
    CallDtmf,
    CallEnded,
    CallOffered,
    CallRecordingReady,
    CallRequested,
    CallRinging,
    CallTransferred,
    CallVoicemail,
)
from hub.ids import new_id
from hub.media import StoredMedia
from hub.refusals import CodedRefusal
from hub.store.db import Conn
from hub.store.outbox import append_events

SYSTEM = Actor(ActorKind.SYSTEM)


class CallRefused(CodedRefusal):
    """The call is not in a state that allows this (taken by someone else, already over)."""


@dataclasses.dataclass(frozen=True, slots=True)
class CallRecord:
    id: str
    account_id: str
    inbox_id: str
    conversation_id: str
    contact_id: str
    message_id: str | None
    direction: str
    number: str
    state: str
    agent_id: str | None
    team_id: str | None
    tried: tuple[str, ...]

    @classmethod
    def of(cls, row: Any) -> CallRecord:
        return cls(
            id=row["id"],
            account_id=row["account_id"],
            inbox_id=row["inbox_id"],
            conversation_id=row["conversation_id"],
            contact_id=row["contact_id"],
            message_id=row["message_id"],
            direction=row["direction"],
            number=row["number"],
            state=row["state"],
            agent_id=row["agent_id"],
            team_id=row["team_id"],
            tried=tuple(row["tried"]),
        )


_COLUMNS = """id, account_id, inbox_id, conversation_id, contact_id, message_id, direction,
              number, state, agent_id, team_id, tried"""


async def _emit(conn: Conn, call: CallRecord, payload: Payload, actor: Actor = SYSTEM) -> None:
    await append_events(
        conn,
        [
            make_event(
                payload,
                account_id=call.account_id,
                conversation_id=call.conversation_id,
                actor=actor,
                correlation_id=call.id,
            )
        ],
    )


async def _locked(conn: Conn, call_id: str, account_id: str | None = None) -> CallRecord:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM calls WHERE id = $1 AND ($2::text IS NULL OR account_id = $2)"
        " FOR UPDATE",
        call_id,
        account_id,
    )
    if row is None:
        raise CallRefused("not_found", "no such call")
    return CallRecord.of(row)


async def _by_call_id(conn: Conn, inbox_id: str, sip_call_id: str) -> CallRecord:
    """The call already stored under this SIP Call-ID (or the PBX's id) in the inbox."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM calls WHERE inbox_id = $1 AND sip_call_id = $2",
        inbox_id,
        sip_call_id,
    )
    return CallRecord.of(row)


async def get_call(pool: asyncpg.Pool[Any], call_id: str) -> CallRecord | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM calls WHERE id = $1", call_id)
    return CallRecord.of(row) if row else None


async def open_call(
    pool: asyncpg.Pool[Any],
    *,
    account_id: str,
    inbox_id: str,
    conversation_id: str,
    contact_id: str,
    message_id: str | None,
    sip_call_id: str,
    number: str,
    direction: CallDirection = CallDirection.INBOUND,
) -> tuple[CallRecord, bool]:
    """The call's row and its ``call.ringing``; a second INVITE with the same Call-ID finds the
    first (``False``: nothing new)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO calls (id, account_id, inbox_id, conversation_id, contact_id,
                                   message_id, direction, sip_call_id, number, state)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'ringing')
                ON CONFLICT (inbox_id, sip_call_id) DO NOTHING
                RETURNING {_COLUMNS}""",
            new_id(),
            account_id,
            inbox_id,
            conversation_id,
            contact_id,
            message_id,
            direction.value,
            sip_call_id,
            number,
        )
        if row is None:
            return await _by_call_id(conn, inbox_id, sip_call_id), False
        call = CallRecord.of(row)
        await _emit(
            conn,
            call,
            CallRinging(
                call_id=call.id,
                inbox_id=inbox_id,
                direction=direction,
                number=number,
                message_id=message_id,
            ),
        )
        return call, True


async def offer(
    pool: asyncpg.Pool[Any], call_id: str, agent_id: str, expires_at: datetime
) -> CallRecord | None:
    """Ring an agent's console; ``None`` if the call ended meanwhile."""
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id)
        # 'answered' with nobody on it: the IVR picked up and is routing the call on
        routable = call.state in ("ringing", "offered") or (
            call.state == "answered" and call.agent_id is None
        )
        if not routable:
            return None
        await conn.execute(
            """UPDATE calls SET state = 'offered', agent_id = $2, offered_at = now(),
                                updated_at = now() WHERE id = $1""",
            call_id,
            agent_id,
        )
        await _emit(
            conn,
            call,
            CallOffered(
                call_id=call_id, inbox_id=call.inbox_id, agent_id=agent_id, expires_at=expires_at
            ),
        )
        return dataclasses.replace(call, state="offered", agent_id=agent_id)


async def set_team(pool: asyncpg.Pool[Any], call_id: str, team_id: str) -> None:
    """The IVR's choice: only this team's agents are offered the call."""
    await pool.execute("UPDATE calls SET team_id = $2 WHERE id = $1", call_id, team_id)


async def accept(pool: asyncpg.Pool[Any], account_id: str, call_id: str, agent_id: str) -> None:
    """An agent takes the call offered to them (409 if it is not, or no longer, theirs)."""
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id, account_id)
        if call.state != "offered" or call.agent_id != agent_id:
            raise CallRefused("not_offered", "this call is not ringing for you")
        await conn.execute(
            "UPDATE calls SET state = 'connecting', updated_at = now() WHERE id = $1", call_id
        )
        await _emit(
            conn,
            call,
            CallAccepted(call_id=call_id, inbox_id=call.inbox_id, agent_id=agent_id),
            Actor(ActorKind.AGENT, agent_id),
        )


async def decline(
    pool: asyncpg.Pool[Any],
    account_id: str | None,
    call_id: str,
    agent_id: str,
    reason: str,
    *,
    by_agent: bool = False,
) -> bool:
    """The agent passes (or rang out, or their phone did not answer): the call goes back to
    routing and is not offered to them again. ``False`` if it was not theirs any more."""
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id, account_id)
        if call.state not in ("offered", "connecting") or call.agent_id != agent_id:
            if by_agent:
                raise CallRefused("not_offered", "this call is not ringing for you")
            return False
        await conn.execute(
            """UPDATE calls SET state = 'ringing', agent_id = NULL, tried = tried || $2::text,
                                updated_at = now() WHERE id = $1""",
            call_id,
            agent_id,
        )
        actor = Actor(ActorKind.AGENT, agent_id) if by_agent else SYSTEM
        await _emit(
            conn,
            call,
            CallDeclined(call_id=call_id, inbox_id=call.inbox_id, agent_id=agent_id, reason=reason),
            actor,
        )
        return True


async def answered(
    pool: asyncpg.Pool[Any], call_id: str, by: str, agent_id: str | None = None
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id)
        if call.state == "ended":
            return
        await conn.execute(
            """UPDATE calls SET state = $2, agent_id = COALESCE($3, agent_id),
                                answered_at = COALESCE(answered_at, now()), updated_at = now()
                WHERE id = $1""",
            call_id,
            "voicemail" if by == "voicemail" else "answered",
            agent_id,
        )
        await _emit(
            conn,
            call,
            CallAnswered(call_id=call_id, inbox_id=call.inbox_id, by=by, agent_id=agent_id),
        )


async def transferred(
    pool: asyncpg.Pool[Any], call_id: str, target: str, method: str, agent_id: str | None
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id)
        await _emit(
            conn,
            call,
            CallTransferred(
                call_id=call_id,
                inbox_id=call.inbox_id,
                target=target,
                method=method,
                agent_id=agent_id,
            ),
        )


async def dtmf(pool: asyncpg.Pool[Any], call_id: str, digit: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id)
        await _emit(conn, call, CallDtmf(call_id=call_id, inbox_id=call.inbox_id, digit=digit))


async def to_voicemail(pool: asyncpg.Pool[Any], call_id: str, reason: str) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id)
        if call.state == "ended":
            return False
        await conn.execute(
            """UPDATE calls SET state = 'voicemail', agent_id = NULL, updated_at = now()
                WHERE id = $1""",
            call_id,
        )
        await _emit(
            conn, call, CallVoicemail(call_id=call_id, inbox_id=call.inbox_id, reason=reason)
        )
        return True


async def ended(
    pool: asyncpg.Pool[Any],
    call_id: str,
    *,
    answered: bool,
    duration_s: float,
    hangup_cause: str,
    ended_by: str,
) -> bool:
    """``False`` if the call had already ended (the end is reported once)."""
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id)
        if call.state == "ended":
            return False
        await conn.execute(
            """UPDATE calls SET state = 'ended', ended_at = now(), duration_ms = $2,
                                hangup_cause = $3, updated_at = now() WHERE id = $1""",
            call_id,
            round(duration_s * 1000),
            hangup_cause,
        )
        await _emit(
            conn,
            call,
            CallEnded(
                call_id=call_id,
                inbox_id=call.inbox_id,
                answered=answered,
                duration_s=round(duration_s, 3),
                hangup_cause=hangup_cause,
                ended_by=ended_by,
            ),
        )
        return True


async def recording_ready(
    pool: asyncpg.Pool[Any], call_id: str, kind: str, stored: StoredMedia, duration_s: float
) -> None:
    """The WAV is served like any attachment of the call's message (so to whoever may see its
    inbox)."""
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id)
        if call.message_id is None:
            raise CallRefused("no_message", "this call has no message to hold a recording")
        await conn.execute(
            """INSERT INTO media (key, account_id, message_id, filename, content_type, size,
                                  sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            stored.key,
            call.account_id,
            call.message_id,
            f"{kind}-{call_id}.wav",
            stored.content_type,
            stored.size,
            stored.sha256,
        )
        column = "voicemail_key" if kind == "voicemail" else "recording_key"
        await conn.execute(
            f"UPDATE calls SET {column} = $2, updated_at = now() WHERE id = $1", call_id, stored.key
        )
        await _emit(
            conn,
            call,
            CallRecordingReady(
                call_id=call_id,
                inbox_id=call.inbox_id,
                kind=kind,
                media_key=stored.key,
                url=f"/api/v1/media/{stored.key}",
                duration_s=round(duration_s, 3),
                size=stored.size,
            ),
        )


async def request_outbound(
    pool: asyncpg.Pool[Any],
    *,
    account_id: str,
    agent_id: str,
    conversation_id: str,
    inboxes: frozenset[str] | None,
) -> CallRecord:
    """Click-to-call from a conversation in a voice inbox: the contact's phone number is called
    from the inbox; the voice process rings the agent's phone first."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """SELECT c.inbox_id, c.contact_id, i.channel
                 FROM conversations c JOIN inboxes i ON i.id = c.inbox_id
                WHERE c.id = $1 AND c.account_id = $2""",
            conversation_id,
            account_id,
        )
        if row is None or (inboxes is not None and row["inbox_id"] not in inboxes):
            raise CallRefused("not_found", "no such conversation")
        if row["channel"] != "sip":
            raise CallRefused(
                "not_voice", "calls are made from a voice (SIP) inbox's conversations"
            )
        phone = await conn.fetchval(
            """SELECT address FROM contact_identities
                WHERE contact_id = $1 AND channel = 'phone' ORDER BY address LIMIT 1""",
            row["contact_id"],
        )
        if phone is None:
            raise CallRefused("no_number", "the contact has no phone number")
        sip_uri = await conn.fetchval(
            "SELECT sip_uri FROM users WHERE id = $1 AND account_id = $2", agent_id, account_id
        )
        if not sip_uri:
            raise CallRefused("no_phone", "set your phone's SIP address in your profile first")
        busy = await conn.fetchval(
            "SELECT 1 FROM calls WHERE account_id = $1 AND agent_id = $2 AND state <> 'ended'",
            account_id,
            agent_id,
        )
        if busy:
            raise CallRefused("on_a_call", "you are on a call")
        call_id = new_id()
        created = await conn.fetchrow(
            f"""INSERT INTO calls (id, account_id, inbox_id, conversation_id, contact_id,
                                   direction, sip_call_id, number, state, agent_id)
                VALUES ($1, $2, $3, $4, $5, 'outbound', $6, $7, 'requested', $8)
                RETURNING {_COLUMNS}""",
            call_id,
            account_id,
            row["inbox_id"],
            conversation_id,
            row["contact_id"],
            f"requested:{call_id}",
            phone,
            agent_id,
        )
        call = CallRecord.of(created)
        await _emit(
            conn,
            call,
            CallRequested(call_id=call_id, inbox_id=call.inbox_id, agent_id=agent_id, number=phone),
            Actor(ActorKind.AGENT, agent_id),
        )
        return call


async def dialling(pool: asyncpg.Pool[Any], call_id: str, sip_call_id: str) -> None:
    """An outbound call's customer leg is on its way."""
    async with pool.acquire() as conn, conn.transaction():
        call = await _locked(conn, call_id)
        await conn.execute(
            """UPDATE calls SET state = 'connecting', sip_call_id = $2, updated_at = now()
                WHERE id = $1""",
            call_id,
            sip_call_id,
        )
        await _emit(
            conn,
            call,
            CallRinging(
                call_id=call_id,
                inbox_id=call.inbox_id,
                direction=CallDirection.OUTBOUND,
                number=call.number,
            ),
        )


async def journal_ended(
    pool: asyncpg.Pool[Any],
    *,
    account_id: str,
    inbox_id: str,
    conversation_id: str,
    contact_id: str,
    message_id: str,
    sip_call_id: str,
    number: str,
    direction: CallDirection,
    agent_id: str | None,
    started_at: datetime,
    answered: bool,
    duration_s: float,
    hangup_cause: str,
) -> tuple[CallRecord, bool]:
    """A call a PBX handled on its own, reported once it was over (3CX's call journal): its row,
    already ended, and its ``call.ended``. A repeat report (same ``sip_call_id``) finds the first
    (``False``: nothing new)."""
    duration_ms = round(duration_s * 1000)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO calls (id, account_id, inbox_id, conversation_id, contact_id,
                                   message_id, direction, sip_call_id, number, state, agent_id,
                                   answered_at, ended_at, duration_ms, hangup_cause, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'ended', $10,
                        CASE WHEN $11 THEN $12::timestamptz END,
                        $12::timestamptz + make_interval(secs => $13::bigint / 1000.0),
                        $13, $14, $12)
                ON CONFLICT (inbox_id, sip_call_id) DO NOTHING
                RETURNING {_COLUMNS}""",
            new_id(),
            account_id,
            inbox_id,
            conversation_id,
            contact_id,
            message_id,
            direction.value,
            sip_call_id,
            number,
            agent_id,
            answered,
            started_at,
            duration_ms,
            hangup_cause,
        )
        if row is None:
            return await _by_call_id(conn, inbox_id, sip_call_id), False
        call = CallRecord.of(row)
        await _emit(
            conn,
            call,
            CallEnded(
                call_id=call.id,
                inbox_id=inbox_id,
                answered=answered,
                duration_s=round(duration_s, 3),
                hangup_cause=hangup_cause,
                ended_by="pbx",
            ),
        )
        return call, True
