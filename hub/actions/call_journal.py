"""Call journaling: a call a PBX (3CX) handled on its own, reported once it was over.

The call goes on the contact's timeline like a call the hub took itself: a message of content
type ``call`` ingested in the voice inbox (so the number resolves to a contact and the call threads
into their conversation), then a ``calls`` row already ended and its ``call.ended``. A PBX retries
a report it thinks failed, so both halves are keyed on the call: the message on its provider id
``3cx:<key>`` (ingest stores it once), the row on ``(inbox, sip_call_id)``. 3CX's journal has no
call id of its own, so the key is a hash of the number, the start time and the direction. A PBX
call id sent again for a different call (another number or direction) is refused
(``idempotency_key_reused``), not answered with the first call.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from hub.actions import calls
from hub.actions.ingest import IngestRequest
from hub.contracts.channel import InboundMessage, InboxContext, Sender
from hub.events.types import CallDirection
from hub.phone import PHONE

if TYPE_CHECKING:
    from hub.app import Hub

#: the provider id prefix of journalled calls' messages and ``calls.sip_call_id``
PREFIX = "3cx:"


@dataclasses.dataclass(frozen=True, slots=True)
class JournalledCall:
    """One finished call as the PBX reports it; ``number`` is E.164."""

    inbox: InboxContext
    number: str
    direction: CallDirection
    answered: bool
    duration_s: float
    started_at: datetime
    name: str | None = None
    agent_extension: str | None = None
    agent_email: str | None = None
    #: the PBX's own id of the call, when it sends one
    pbx_call_id: str | None = None

    @property
    def started_utc(self) -> datetime:
        """The start in UTC to the second (a time without a zone is UTC, as the template sends)."""
        start = self.started_at
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        return start.astimezone(UTC).replace(microsecond=0)

    @property
    def key(self) -> str:
        """What makes a retried report the same call."""
        if self.pbx_call_id:
            return self.pbx_call_id
        seed = f"{self.number}|{self.started_utc.isoformat()}|{self.direction.value}"
        return hashlib.sha256(seed.encode()).hexdigest()[:32]


@dataclasses.dataclass(frozen=True, slots=True)
class JournalResult:
    call_id: str
    message_id: str
    conversation_id: str
    contact_id: str
    agent_id: str | None
    duplicate: bool


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def describe(entry: JournalledCall) -> str:
    """The call message's text: what happened, who took it, how long."""
    by = f" by extension {entry.agent_extension}" if entry.agent_extension else ""
    if entry.direction is CallDirection.INBOUND:
        if entry.answered:
            return f"Call from {entry.number} answered{by} ({_clock(entry.duration_s)})"
        return f"Missed call from {entry.number}"
    if entry.answered:
        return f"Call to {entry.number}{by} ({_clock(entry.duration_s)})"
    return f"Call to {entry.number}{by}, not answered"


async def find_agent(
    pool: asyncpg.Pool[Any], account_id: str, extension: str | None, email: str | None
) -> str | None:
    """The hub user behind a PBX extension: the one whose phone (``sip_uri``) is that extension,
    else the one with that email address."""
    if not extension and not email:
        return None
    found: str | None = await pool.fetchval(
        """SELECT id FROM users
            WHERE account_id = $1 AND disabled_at IS NULL
              AND (split_part(split_part(sip_uri, ':', 2), '@', 1) = $2
                   OR lower(email) = lower($3))
            ORDER BY split_part(split_part(sip_uri, ':', 2), '@', 1) = $2 DESC NULLS LAST, id
            LIMIT 1""",
        account_id,
        extension or None,  # NULL matches nothing (a cleared sip_uri is "")
        email or None,
    )
    return found


async def journal_call(hub: Hub, entry: JournalledCall) -> JournalResult:
    """Record the call once, however often it is reported."""
    inbox = entry.inbox
    provider_id = f"{PREFIX}{entry.key}"
    message = InboundMessage(
        provider_message_id=provider_id,
        sender=Sender(PHONE, entry.number, entry.name),
        content=describe(entry),
        content_type="call",
        sent_at=entry.started_utc,
    )
    ingested = await hub.ingest.submit(IngestRequest(inbox, message))
    agent_id = await find_agent(
        hub.pool, inbox.account_id, entry.agent_extension, entry.agent_email
    )
    answered = entry.answered
    if ingested.duplicate:
        # a retry finds its own call; the same PBX call id for another call is a conflict
        # (nothing new was stored: the message exists already)
        first = await hub.pool.fetchrow(
            "SELECT number, direction FROM calls WHERE inbox_id = $1 AND sip_call_id = $2",
            inbox.id,
            provider_id,
        )
        if first is not None and (first["number"], first["direction"]) != (
            entry.number,
            entry.direction.value,
        ):
            raise calls.CallRefused(
                "idempotency_key_reused",
                "this call_id was already reported for a different call",
            )
    record, new = await calls.journal_ended(
        hub.pool,
        account_id=inbox.account_id,
        inbox_id=inbox.id,
        conversation_id=ingested.conversation_id,
        contact_id=ingested.contact_id,
        message_id=ingested.message_id,
        sip_call_id=provider_id,
        number=entry.number,
        direction=entry.direction,
        agent_id=agent_id,
        started_at=entry.started_utc,
        answered=answered,
        duration_s=entry.duration_s if answered else 0.0,
        hangup_cause="3CX: answered" if answered else "3CX: not answered",
    )
    return JournalResult(
        call_id=record.id,
        message_id=ingested.message_id,
        conversation_id=record.conversation_id,
        contact_id=record.contact_id,
        agent_id=record.agent_id,
        duplicate=not new,
    )
