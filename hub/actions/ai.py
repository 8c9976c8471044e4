"""The AI part's findings, written through the core: a message's language, sentiment and intent
labels on its row (rules read them there), and ``message.analysed`` in the same transaction (the
AI consumer claims the event it analysed in that transaction too, so a redelivery writes nothing
twice)."""

from __future__ import annotations

from collections.abc import Sequence

from hub.events import Actor, ActorKind, make_event
from hub.events.envelope import Event
from hub.events.types import MessageAnalysed
from hub.store.db import Conn
from hub.store.outbox import append_events

ACTOR = Actor(ActorKind.SYSTEM, "ai")


def analysed_event(
    payload: MessageAnalysed, *, account_id: str, conversation_id: str, causation_id: str
) -> Event[MessageAnalysed]:
    return make_event(
        payload,
        account_id=account_id,
        conversation_id=conversation_id,
        actor=ACTOR,
        causation_id=causation_id,
    )


async def record_analyses(conn: Conn, events: Sequence[Event[MessageAnalysed]]) -> None:
    """Store each message's language, sentiment and intent labels and emit the events."""
    if not events:
        return
    await conn.execute(
        """UPDATE messages m SET language = x.language, sentiment = x.sentiment,
                                 intents = string_to_array(nullif(x.intents, ''), E'\\x1f')
             FROM unnest($1::text[], $2::text[], $3::real[], $4::text[])
                  AS x(id, language, sentiment, intents)
            WHERE m.id = x.id""",
        [e.payload.message_id for e in events],
        [e.payload.language for e in events],
        [e.payload.sentiment for e in events],
        ["\x1f".join(i.label for i in e.payload.intents) for e in events],
    )
    await append_events(conn, events)
