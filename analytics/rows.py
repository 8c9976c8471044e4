"""Events to analytics rows: which event feeds which table, and with what.

Rows are array-like structs in their table's column order (see ``analytics/schema.py``), encoded
once as JSONCompactEachRow. The consumer, the backfill and the benchmark all build rows here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

from hub.events.envelope import ActorKind, Event, Payload
from hub.events.types import (
    AgentPresenceChanged,
    CallAnswered,
    CallEnded,
    CallRinging,
    ConversationCreated,
    ConversationRated,
    ConversationStatus,
    ConversationUpdated,
    MessageAnalysed,
    MessageCreated,
    MessageReceived,
    SlaBreached,
    SlaWarning,
)


class EventRow(msgspec.Struct, array_like=True):
    """The columns every event table starts with (``analytics.schema._COMMON``), in its order:
    each table's row adds its own after them."""

    event_id: str
    account_id: str
    occurred_at: datetime
    conversation_id: str
    inbox_id: str
    channel: str


class MessageRow(EventRow, array_like=True):
    direction: str
    private: int
    agent_id: str
    contact_id: str
    message_id: str


class ConversationRow(EventRow, array_like=True):
    kind: str
    status: str
    assignee_id: str
    contact_id: str
    actor_id: str
    #: the conversation's team after the change (older callers may leave it out)
    team_id: str = ""


class CallRow(EventRow, array_like=True):
    call_id: str
    kind: str
    direction: str
    agent_id: str
    answered: int
    answered_by: str
    duration_s: float


class RatingRow(EventRow, array_like=True):
    contact_id: str
    rating: int


class LanguageRow(EventRow, array_like=True):
    message_id: str
    language: str


class SlaRow(EventRow, array_like=True):
    kind: str
    policy_id: str
    metric: str
    cycle: int
    due_at: datetime


class PresenceRow(EventRow, array_like=True):
    agent_id: str
    status: str


class Rows(msgspec.Struct):
    messages: list[MessageRow] = msgspec.field(default_factory=list)
    conversation_events: list[ConversationRow] = msgspec.field(default_factory=list)
    call_events: list[CallRow] = msgspec.field(default_factory=list)
    ratings: list[RatingRow] = msgspec.field(default_factory=list)
    message_languages: list[LanguageRow] = msgspec.field(default_factory=list)
    sla_events: list[SlaRow] = msgspec.field(default_factory=list)
    agent_presence: list[PresenceRow] = msgspec.field(default_factory=list)

    def tables(self) -> dict[str, list[msgspec.Struct]]:
        return {
            "messages": list(self.messages),
            "conversation_events": list(self.conversation_events),
            "call_events": list(self.call_events),
            "ratings": list(self.ratings),
            "message_languages": list(self.message_languages),
            "sla_events": list(self.sla_events),
            "agent_presence": list(self.agent_presence),
        }

    def moments(self) -> list[datetime]:
        """When every row's event happened (the days a write touches). Only the tables the
        rollups are built from: the others are always read raw."""
        return [
            r.occurred_at
            for table in (self.messages, self.conversation_events, self.call_events)
            for r in table
        ]

    def __len__(self) -> int:
        return sum(len(items) for items in self.tables().values())


def inbox_of(payload: Payload) -> str | None:
    inbox = getattr(payload, "inbox_id", None)
    return inbox if isinstance(inbox, str) else None


def conversation_kind(payload: ConversationUpdated) -> str:
    """What a change means for reports: a resolution, a reopening, an assignment, or other."""
    previous = payload.previous
    if previous.status is not msgspec.UNSET:
        if payload.state.status is ConversationStatus.RESOLVED:
            return "resolved"
        if previous.status is ConversationStatus.RESOLVED:
            return "reopened"
    if previous.assignee_id is not msgspec.UNSET:
        return "assigned"
    return "updated"


def build_rows(events: Iterable[Event[Payload]], channels: Mapping[str, str]) -> Rows:
    """The rows of the events this store keeps; other types are skipped. ``channels``: inbox id
    to channel, for payloads that do not carry it."""
    rows = Rows()
    for event in events:
        payload = event.payload
        conversation = event.conversation_id or ""
        inbox = inbox_of(payload) or ""
        channel = channels.get(inbox, "")
        actor = event.actor.id or ""
        if isinstance(payload, MessageReceived):
            rows.messages.append(
                MessageRow(
                    event.id,
                    event.account_id,
                    event.occurred_at,
                    conversation,
                    inbox,
                    payload.channel,
                    "inbound",
                    0,
                    "",
                    payload.contact_id,
                    payload.message_id,
                )
            )
        elif isinstance(payload, MessageCreated):
            agent = payload.sender_id or (actor if event.actor.kind is ActorKind.AGENT else "")
            rows.messages.append(
                MessageRow(
                    event.id,
                    event.account_id,
                    event.occurred_at,
                    conversation,
                    inbox,
                    channel,
                    "outbound",
                    int(payload.private),
                    agent,
                    "",
                    payload.message_id,
                )
            )
        elif isinstance(payload, ConversationCreated):
            state = payload.state
            rows.conversation_events.append(
                ConversationRow(
                    event.id,
                    event.account_id,
                    event.occurred_at,
                    conversation,
                    inbox,
                    channel,
                    "created",
                    state.status.value,
                    state.assignee_id or "",
                    payload.contact_id,
                    actor,
                    state.team_id or "",
                )
            )
        elif isinstance(payload, ConversationUpdated):
            state = payload.state
            rows.conversation_events.append(
                ConversationRow(
                    event.id,
                    event.account_id,
                    event.occurred_at,
                    conversation,
                    inbox,
                    channel,
                    conversation_kind(payload),
                    state.status.value,
                    state.assignee_id or "",
                    "",
                    actor,
                    state.team_id or "",
                )
            )
        elif isinstance(payload, ConversationRated):
            rows.ratings.append(
                RatingRow(
                    event.id,
                    event.account_id,
                    event.occurred_at,
                    conversation,
                    inbox,
                    channel,
                    payload.contact_id,
                    min(max(payload.rating, 0), 255),
                )
            )
        elif isinstance(payload, MessageAnalysed):
            if payload.language:
                rows.message_languages.append(
                    LanguageRow(
                        event.id,
                        event.account_id,
                        event.occurred_at,
                        conversation,
                        inbox,
                        channel,
                        payload.message_id,
                        payload.language,
                    )
                )
        elif isinstance(payload, SlaWarning | SlaBreached):
            rows.sla_events.append(
                SlaRow(
                    event.id,
                    event.account_id,
                    event.occurred_at,
                    conversation,
                    inbox,
                    channel,
                    "breached" if isinstance(payload, SlaBreached) else "warning",
                    payload.policy_id,
                    payload.metric,
                    max(payload.cycle, 0),
                    payload.due_at,
                )
            )
        elif isinstance(payload, AgentPresenceChanged):
            rows.agent_presence.append(
                PresenceRow(
                    event.id,
                    event.account_id,
                    event.occurred_at,
                    "",
                    "",
                    "",
                    payload.agent_id,
                    payload.status,
                )
            )
        elif event.type.startswith("call."):
            call_id = getattr(payload, "call_id", "")
            agent = getattr(payload, "agent_id", None) or ""
            direction = payload.direction.value if isinstance(payload, CallRinging) else ""
            by = payload.by if isinstance(payload, CallAnswered) else ""
            answered = int(payload.answered) if isinstance(payload, CallEnded) else 0
            duration = payload.duration_s if isinstance(payload, CallEnded) else 0.0
            rows.call_events.append(
                CallRow(
                    event.id,
                    event.account_id,
                    event.occurred_at,
                    conversation,
                    inbox,
                    channel,
                    call_id,
                    event.type.removeprefix("call."),
                    direction,
                    agent,
                    answered,
                    by,
                    duration,
                )
            )
    return rows
