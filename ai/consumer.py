"""The AI consumer group: reads messages off the stream, never on the ingest path.

For a customer's message: its language, sentiment and the conversation's trend, intent labels
and the top reply suggestions, stored on the message and announced as ``message.analysed`` (which
the realtime part forwards to the agents' sockets). For an agent's reply: its language, and the
pair (customer message, reply) joins the account's suggestion index. For ``contact.erased``: that
person's messages leave every index.

A batch is analysed at once (one call of the embedding model for all its messages), then
written in one transaction that claims the event ids (``processed_events``), so a redelivered
event changes nothing. Under a backlog (events older than ``stale_after`` seconds) only language
and sentiment are worked out: suggestions for a message answered long ago help nobody, and the
catch-up stays fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import numpy as np
from prometheus_client import Counter

from ai.index import ReplyIndex
from ai.intents import IntentSet
from ai.minilm import Vectors
from ai.models import Models
from ai.providers import Provider, SuggestionContext
from ai.sentiment import trend
from ai.vector_bytes import to_bytes
from hub.actions.ai import analysed_event, record_analyses
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.idempotency import claim
from hub.events.envelope import Event, Payload, UnknownEventType, decode_event
from hub.events.types import (
    CONTACTS,
    CONVERSATIONS,
    ContactErased,
    IntentGuess,
    MessageAnalysed,
    MessageCreated,
    MessageReceived,
    ReplySuggestion,
)
from hub.metrics import REGISTRY
from hub.store.db import Conn

GROUP = "ai"
log = logging.getLogger("hub.ai")

ANALYSED = Counter(
    "hub_ai_messages_analysed",
    "Messages the AI part analysed, by what it could do (full, or language and sentiment only)",
    ["depth"],
    registry=REGISTRY,
)

#: what the models read of a message (a 1 MB message costs what its start costs)
TEXT_SAMPLE = 2000


@dataclass
class _Intents:
    updated: list[datetime]
    intents: IntentSet


@dataclass
class _Item:
    event: Event[Any]
    text: str
    language: str | None = None
    sentiment: float | None = None
    vector: Vectors | None = None
    intents: tuple[IntentGuess, ...] = ()
    suggestions: tuple[ReplySuggestion, ...] = ()
    fresh: bool = True


@dataclass
class AiSettings:
    intent_threshold: float = 0.5
    stale_after: float = 60.0


def _clean(text: str | None) -> str:
    """Text the models can read: a sample, without control characters (binary content)."""
    sample = (text or "")[:TEXT_SAMPLE]
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in sample).strip()


@dataclass
class AiConsumer:
    pool: asyncpg.Pool[Any]
    models: Models
    provider: Provider
    settings: AiSettings = field(default_factory=AiSettings)
    index: ReplyIndex = field(default_factory=ReplyIndex)
    _intents: dict[str, _Intents] = field(default_factory=dict)

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        # an erasure is never skipped, however far behind the analysis falls
        every = replace(options, max_lag=None)
        return [
            await bus.subscribe(CONVERSATIONS, GROUP, self.handle, options),
            await bus.subscribe(CONTACTS, GROUP, self.handle_contacts, every),
        ]

    async def embed(self, texts: list[str]) -> Vectors | None:
        return await self.models.run(self.models.embed, texts)

    # --- messages -------------------------------------------------------------------------------

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        items: list[_Item] = []
        for m in batch:
            try:
                event = decode_event(m.value)
            except UnknownEventType:
                continue
            p = event.payload
            if isinstance(p, MessageReceived) or (
                isinstance(p, MessageCreated) and not p.private and p.sender_id is not None
            ):
                assert event.conversation_id is not None
                items.append(_Item(event, _clean(p.content)))
        if not items:
            return
        async with self.pool.acquire() as conn:
            done = await conn.fetch(
                """SELECT event_id FROM processed_events
                    WHERE consumer = $1 AND event_id = ANY($2::text[])""",
                GROUP,
                [i.event.id for i in items],
            )
        seen = {r["event_id"] for r in done}
        items = [i for i in items if i.event.id not in seen]
        if not items:
            return
        now = datetime.now(UTC)
        for item in items:
            item.fresh = (now - item.event.occurred_at).total_seconds() <= self.settings.stale_after
        await self.models.run(self._read, items)
        customers = [i for i in items if isinstance(i.event.payload, MessageReceived) and i.text]
        to_embed = [i for i in customers if i.fresh]
        vectors = await self.embed([i.text for i in to_embed]) if to_embed else None
        if vectors is not None:
            for item, vector in zip(to_embed, vectors, strict=True):
                item.vector = vector
        async with self.pool.acquire() as conn:
            await self._suggest(conn, [i for i in customers if i.vector is not None])
            async with conn.transaction():
                await self._write(conn, items)
        for item in items:
            if isinstance(item.event.payload, MessageReceived):
                ANALYSED.labels("full" if item.vector is not None else "basic").inc()

    def _read(self, items: list[_Item]) -> None:
        """Language and sentiment (model thread)."""
        self.models.has_language()
        for item in items:
            item.language = self.models.language.detect(item.text).code
            if isinstance(item.event.payload, MessageReceived):
                item.sentiment = self.models.sentiment.score(item.text, item.language)

    async def _suggest(self, conn: Conn, items: list[_Item]) -> None:
        by_account: dict[str, list[_Item]] = {}
        for item in items:
            by_account.setdefault(item.event.account_id, []).append(item)
        for account_id, group in by_account.items():
            intents = await self._intent_set(conn, account_id)
            if intents is not None:
                queries = np.stack([i.vector for i in group if i.vector is not None])
                guesses = intents.classify(queries, self.settings.intent_threshold)
                for item, guess in zip(group, guesses, strict=True):
                    item.intents = guess
            index = await self.index.refresh(conn, account_id, self.embed)
            for item in group:
                assert item.vector is not None
                context = SuggestionContext(
                    account_id=account_id,
                    conversation_id=item.event.conversation_id or "",
                    text=item.text,
                    language=item.language,
                    vector=item.vector,
                )
                try:
                    item.suggestions = tuple(await self.provider.suggest(context, index))
                except Exception as exc:  # a remote provider down: no suggestions, not a stall
                    log.warning("AI suggestion provider failed: %s: %s", type(exc).__name__, exc)
                    item.suggestions = ()

    async def _intent_set(self, conn: Conn, account_id: str) -> IntentSet | None:
        rows = await conn.fetch(
            "SELECT label, examples, updated_at FROM ai_intents WHERE account_id = $1 "
            "ORDER BY label",
            account_id,
        )
        if not rows:
            self._intents.pop(account_id, None)
            return None
        updated = [r["updated_at"] for r in rows]
        cached = self._intents.get(account_id)
        if cached is not None and cached.updated == updated:
            return cached.intents
        texts: list[str] = []
        owners: list[int] = []
        for j, row in enumerate(rows):
            for example in row["examples"]:
                texts.append(example)
                owners.append(j)
        vectors = await self.embed(texts)
        if vectors is None:
            return None
        intents = IntentSet([r["label"] for r in rows], owners, vectors)
        self._intents[account_id] = _Intents(updated, intents)
        return intents

    async def _write(self, conn: Conn, items: list[_Item]) -> None:
        claimed = await claim(conn, GROUP, [i.event.id for i in items])
        items = [i for i in items if i.event.id in claimed]
        if not items:
            return
        conversations = sorted({i.event.conversation_id or "" for i in items})
        rows = await conn.fetch(
            """SELECT conversation_id, sentiment_trend, scored FROM ai_conversations
                WHERE conversation_id = ANY($1::text[]) FOR UPDATE""",
            conversations,
        )
        trends: dict[str, tuple[float | None, int]] = {
            r["conversation_id"]: (r["sentiment_trend"], r["scored"]) for r in rows
        }
        # the customer's message an agent's reply answers: the latest one before it
        latest = await conn.fetch(
            """SELECT DISTINCT ON (conversation_id) conversation_id, message_id, contact_id,
                      embedding
                 FROM ai_message_vectors WHERE conversation_id = ANY($1::text[])
                ORDER BY conversation_id, message_id DESC""",
            conversations,
        )
        asked: dict[str, tuple[str | None, bytes]] = {
            r["conversation_id"]: (r["contact_id"], r["embedding"]) for r in latest
        }
        events: list[Event[MessageAnalysed]] = []
        quiet: list[tuple[str, str | None]] = []
        vectors: list[tuple[str, str, str, str | None, bytes]] = []
        replies: list[tuple[str, str, str, str | None, str, bytes]] = []
        states: dict[str, tuple[str, float | None, int, str, bytes]] = {}
        for item in items:
            event = item.event
            p: Payload = event.payload
            conversation_id = event.conversation_id
            assert conversation_id is not None
            if isinstance(p, MessageReceived):
                previous, scored = trends.get(conversation_id, (None, 0))
                current = trend(previous, item.sentiment)
                scored += item.sentiment is not None
                trends[conversation_id] = (current, scored)
                if item.vector is not None:
                    row = to_bytes(item.vector)
                    vectors.append(
                        (p.message_id, event.account_id, conversation_id, p.contact_id, row)
                    )
                    asked[conversation_id] = (p.contact_id, row)
                analysed = analysed_event(
                    MessageAnalysed(
                        message_id=p.message_id,
                        inbox_id=p.inbox_id,
                        language=item.language,
                        sentiment=item.sentiment,
                        sentiment_trend=current,
                        intents=item.intents,
                        suggestions=item.suggestions,
                    ),
                    account_id=event.account_id,
                    conversation_id=conversation_id,
                    causation_id=event.id,
                )
                events.append(analysed)
                states[conversation_id] = (
                    event.account_id,
                    current,
                    scored,
                    p.message_id,
                    msgspec.json.encode(analysed.payload),
                )
            elif isinstance(p, MessageCreated):
                quiet.append((p.message_id, item.language))
                question = asked.get(conversation_id)
                if question is not None and item.text:
                    contact_id, row = question
                    replies.append(
                        (
                            p.message_id,
                            event.account_id,
                            conversation_id,
                            contact_id,
                            item.text,
                            row,
                        )
                    )
        if vectors:
            await conn.executemany(
                """INSERT INTO ai_message_vectors
                          (message_id, account_id, conversation_id, contact_id, embedding)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                vectors,
            )
        if replies:
            await conn.executemany(
                """INSERT INTO ai_replies
                          (id, account_id, conversation_id, contact_id, content, embedding)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
                replies,
            )
        if states:
            await conn.executemany(
                """INSERT INTO ai_conversations AS c (conversation_id, account_id,
                          sentiment_trend, scored, last_message_id, last_analysis)
                   VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
                   ON CONFLICT (conversation_id) DO UPDATE SET
                          sentiment_trend = EXCLUDED.sentiment_trend, scored = EXCLUDED.scored,
                          last_message_id = EXCLUDED.last_message_id,
                          last_analysis = EXCLUDED.last_analysis""",
                [(cid, *state[:4], state[4].decode()) for cid, state in states.items()],
            )
        if quiet:
            await conn.execute(
                """UPDATE messages m SET language = x.language
                     FROM unnest($1::text[], $2::text[]) AS x(id, language) WHERE m.id = x.id""",
                [q[0] for q in quiet],
                [q[1] for q in quiet],
            )
        await record_analyses(conn, events)

    # --- erasure --------------------------------------------------------------------------------

    async def handle_contacts(self, batch: Sequence[BusMessage]) -> None:
        for m in batch:
            try:
                event = decode_event(m.value)
            except UnknownEventType:
                continue
            if isinstance(event.payload, ContactErased):
                await self.erase(event.account_id, event.payload)

    async def erase(self, account_id: str, erased: ContactErased) -> None:
        """Forget a person in every index; repeatable, so a redelivery is harmless."""
        started = time.perf_counter()
        messages = list(erased.message_ids)
        conversations = list(erased.conversation_ids)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """DELETE FROM ai_message_vectors WHERE contact_id = $1
                      OR message_id = ANY($2::text[]) OR conversation_id = ANY($3::text[])""",
                erased.contact_id,
                messages,
                conversations,
            )
            await conn.execute(
                """DELETE FROM ai_replies WHERE contact_id = $1
                      OR id = ANY($2::text[]) OR conversation_id = ANY($3::text[])""",
                erased.contact_id,
                messages,
                conversations,
            )
            await conn.execute(
                "DELETE FROM ai_conversations WHERE conversation_id = ANY($1::text[])",
                conversations,
            )
            await conn.execute(
                """INSERT INTO ai_index_epochs (account_id, epoch) VALUES ($1, 1)
                   ON CONFLICT (account_id) DO UPDATE SET epoch = ai_index_epochs.epoch + 1""",
                account_id,
            )
        self.index.drop(account_id)
        log.info(
            "AI indexes forgot contact %s (%.0f ms)",
            erased.contact_id,
            (time.perf_counter() - started) * 1000,
        )


__all__ = ["AiConsumer", "AiSettings"]
