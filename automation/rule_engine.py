"""The rules engine: a consumer of the event stream that evaluates an account's rules on each
event and acts only through the core's actions, so every automated change is an ordinary event
whose actor is the rule (``integration``, the rule id) and whose ``causation_id`` is the event
that fired it: on the timeline, in the journal, on the agents' sockets.

A bus batch is handled with statements per batch, not per event: one statement finds which
events have an enabled rule of their trigger (and the rules' fingerprints); one more reads every
conversation of those events with its inbox's business hours, and the rules are evaluated in
memory, compiled once per version of the account's rules (``rule_evaluator.py``: an index that
skips the rules an event cannot match, closures for the conditions of the rest). An event no
rule matches writes nothing: it has no effect to guard against doing twice. From the first event
a rule matches on, the batch goes on in one transaction that claims those events (a redelivery
does nothing) with how deep in a chain of rule-made changes each is (the depth recorded for the
event that caused it, plus one; ``MAX_DEPTH`` stops it), reads their conversations again and
evaluates them in event order: the actions of each matching rule (one savepoint per rule), the
run recorded, stop after a rule with ``stop_processing``; a later event of the batch on a
conversation a rule changed reads it again. A rule whose action no longer works (a deleted agent
or label) or whose pattern runs too long is turned off with the reason, never crashes the
consumer; any other failure rolls the batch back, and the bus hands it again record by record
(``hub/bus/delivery.py``), so one event's failure never loses the others.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from msgspec import UNSET

from automation.batching import LINGER
from automation.rule_evaluator import CompiledRules, Context, PatternTimeout
from automation.rule_model import SENTIMENT_CUTOFF, Action
from automation.rule_store import Rule, disable_rule, list_rules, sends_email
from automation.webhook_store import record_deliveries
from hub.actions.accounts import Refused
from hub.actions.conversations import Changes, ConversationRefused, update_conversation
from hub.actions.messages import MessageRefused, create_agent_message
from hub.actions.outbound import OutboundRefused, open_conversation
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.business_hours import Schedule
from hub.consumers.idempotency import CLAIM_SQL
from hub.consumers.stream import StreamConsumer
from hub.contracts.channel import Template
from hub.events import Actor, ActorKind, Event, UnknownEventType, decode_event
from hub.events.types import (
    CONTACTS,
    CONVERSATIONS,
    ContactUpdated,
    ConversationCreated,
    ConversationStatus,
    ConversationUpdated,
    MessageAnalysed,
    MessageCreated,
    MessageReceived,
    SlaBreached,
)
from hub.store.business_hours import hours_of_inboxes, schedule_of
from hub.store.db import Conn

log = logging.getLogger(__name__)

GROUP = "automation-rules"
#: events further down a chain of rule-made changes fire no rule (loop protection)
MAX_DEPTH = 3


def sentiment_label(score: float | None) -> str | None:
    """VADER's usual cut-offs (the AI part's own labels)."""
    if score is None:
        return None
    if score >= SENTIMENT_CUTOFF:
        return "positive"
    if score <= -SENTIMENT_CUTOFF:
        return "negative"
    return "neutral"


def triggers_of(event: Event[Any]) -> list[str]:
    payload = event.payload
    if isinstance(payload, MessageReceived):
        return ["message_created"]
    if isinstance(payload, MessageCreated):
        return [] if payload.private else ["message_created"]
    if isinstance(payload, ConversationCreated):
        return ["conversation_created"]
    if isinstance(payload, ConversationUpdated):
        found = ["conversation_updated"]
        if (
            payload.state.status is ConversationStatus.RESOLVED
            and payload.previous.status is not UNSET
        ):
            found.append("conversation_resolved")
        return found
    if isinstance(payload, ContactUpdated):
        return ["contact_updated"]
    if isinstance(payload, SlaBreached):
        return ["sla_breached"]
    if isinstance(payload, MessageAnalysed):
        return ["message_analysed"]
    return []


@dataclasses.dataclass(frozen=True)
class Needs:
    """What the rules about to run look at beyond the conversation itself, so an event whose
    rules do not ask costs no extra read."""

    analysis: bool = False
    attributes: bool = False

    @staticmethod
    def of(rule_sets: Iterable[CompiledRules]) -> Needs:
        fields = frozenset[str]().union(*(rules.fields for rules in rule_sets))
        return Needs(
            analysis=bool(fields & {"language", "sentiment", "intent"}),
            attributes="contact_attribute" in fields,
        )


ALL = Needs(analysis=True, attributes=True)


def _analysis(message_id: str) -> str:
    """The conversation's latest analysed customer message, or the analysed message itself when
    the SQL expression ``message_id`` is not null."""
    return f"""
  LEFT JOIN LATERAL (SELECT language, sentiment, intents, content, direction FROM messages
                      WHERE conversation_id = c.id
                        AND CASE WHEN {message_id} IS NULL
                                 THEN direction = 'inbound' AND NOT private
                                      AND (language IS NOT NULL OR sentiment IS NOT NULL
                                           OR intents IS NOT NULL)
                                 ELSE id = {message_id} END
                      ORDER BY id DESC LIMIT 1) a ON true"""


async def contexts(conn: Conn, event: Event[Any], needs: Needs = ALL) -> list[Context]:
    """The conversations one event is about, as conditions see them (one statement)."""
    return (await batch_contexts(conn, [event], needs))[0]


async def batch_contexts(
    conn: Conn, events: Sequence[Event[Any]], needs: Needs = ALL
) -> list[list[Context]]:
    """The conversations each event is about (its conversation; a contact's open ones), as
    conditions see them, in one statement for the whole batch: the conversations with their
    inboxes' business hours, the contact's attributes and the latest analysis when ``needs``
    says."""
    ords: list[int] = []
    by_contact: list[bool] = []
    keys: list[str] = []
    accounts: list[str] = []
    message_ids: list[str | None] = []
    for i, event in enumerate(events):
        payload = event.payload
        if isinstance(payload, ContactUpdated):
            contact, key = True, payload.contact_id
        elif event.conversation_id is not None:
            contact, key = False, event.conversation_id
        else:
            continue
        ords.append(i)
        by_contact.append(contact)
        keys.append(key)
        accounts.append(event.account_id)
        message_ids.append(payload.message_id if isinstance(payload, MessageAnalysed) else None)
    found: list[list[Context]] = [[] for _ in events]
    if not ords:
        return found
    columns, joins = "", ""
    if needs.attributes:
        columns += ", ct.attributes"
        joins += " LEFT JOIN contacts ct ON ct.id = c.contact_id"
    if needs.analysis or any(m is not None for m in message_ids):
        columns += ", a.language, a.sentiment, a.intents, a.content, a.direction"
        joins += _analysis("c.message_id")
    picked = "k.ord, k.message_id, c.id, c.inbox_id, c.contact_id, c.status, c.priority, c.labels"
    rows = await conn.fetch(
        f"""WITH k AS (SELECT * FROM unnest($1::int[], $2::bool[], $3::text[], $4::text[],
                                           $5::text[])
                                 AS k(ord, by_contact, key, account_id, message_id)),
                 picked AS (
                   SELECT {picked} FROM k JOIN conversations c
                       ON c.id = k.key AND c.account_id = k.account_id
                    WHERE NOT k.by_contact
                   UNION ALL
                   SELECT {picked} FROM k JOIN conversations c
                       ON c.contact_id = k.key AND c.account_id = k.account_id
                    WHERE k.by_contact AND c.status <> 'resolved')
            SELECT c.ord, c.id, c.inbox_id, i.channel, c.status, c.priority, c.labels,
                   h.time_zone, h.spans, h.holidays{columns}
              FROM picked c JOIN inboxes i ON i.id = c.inbox_id
              LEFT JOIN inbox_business_hours h ON h.inbox_id = c.inbox_id{joins}
             ORDER BY c.ord, c.id""",
        ords,
        by_contact,
        keys,
        accounts,
        message_ids,
    )
    schedules: dict[str, Schedule | None] = {}
    for r in rows:
        event = events[r["ord"]]
        payload = event.payload
        inbox_id = r["inbox_id"]
        if inbox_id not in schedules:
            schedules[inbox_id] = None if r["time_zone"] is None else schedule_of(r)
        schedule = schedules[inbox_id]
        closed = schedule is not None and not schedule.is_open(event.occurred_at)
        analysed = isinstance(payload, MessageAnalysed)
        content = direction = None
        if isinstance(payload, MessageReceived):
            content, direction = payload.content, "inbound"
        elif isinstance(payload, MessageCreated):
            content, direction = payload.content, "outbound"
        found[r["ord"]].append(
            Context(
                conversation_id=r["id"],
                inbox_id=inbox_id,
                channel=r["channel"],
                status=r["status"],
                priority=r["priority"],
                labels=tuple(r["labels"]),
                content=r["content"] if analysed else content,
                direction=r["direction"] if analysed else direction,
                business_hours="closed" if closed else "open",
                **_findings(payload if analysed else None, r),
            )
        )
    return found


def _findings(analysed: MessageAnalysed | None, row: Any) -> dict[str, Any]:
    """The analysis and attributes fields of a context, from the event when it is the analysis
    itself, from the row otherwise (absent columns: nothing)."""
    found: dict[str, Any] = {}
    have = set(row.keys())
    if "attributes" in have:
        found["attributes"] = row["attributes"] or {}
    if analysed is not None:
        found.update(
            language=analysed.language,
            sentiment=sentiment_label(analysed.sentiment),
            intent=tuple(i.label for i in analysed.intents),
        )
    elif "language" in have:
        found.update(
            language=row["language"],
            sentiment=sentiment_label(row["sentiment"]),
            intent=tuple(row["intents"] or ()),
        )
    return found


async def open_now(conn: Conn, inbox_id: str) -> str:
    found = (await hours_of_inboxes(conn, [inbox_id])).get(inbox_id)
    return "closed" if found and not found.schedule.is_open(datetime.now(UTC)) else "open"


async def refreshed(conn: Conn, ctx: Context) -> Context:
    row = await conn.fetchrow(
        "SELECT status, priority, labels FROM conversations WHERE id = $1", ctx.conversation_id
    )
    if row is None:
        return ctx
    return dataclasses.replace(
        ctx, status=row["status"], priority=row["priority"], labels=tuple(row["labels"])
    )


async def apply(
    conn: Conn, rule: Rule, event: Event[Any], ctx: Context, record: BusMessage | None
) -> None:
    """Run a rule's actions on one conversation as the rule."""
    await run_actions(
        conn,
        account_id=event.account_id,
        conversation_id=ctx.conversation_id,
        labels=ctx.labels,
        actions=rule.actions,
        actor=Actor(ActorKind.INTEGRATION, rule.id),
        correlation_id=event.correlation_id,
        causation_id=event.id,
        webhook=None if record is None else (event, record, rule.id),
        skip_unsupported=True,
    )


async def run_actions(
    conn: Conn,
    *,
    account_id: str,
    conversation_id: str,
    labels: Sequence[str],
    actions: Sequence[Action],
    actor: Actor,
    correlation_id: str | None,
    causation_id: str | None,
    webhook: tuple[Event[Any], BusMessage, str] | None = None,
    skip_unsupported: bool = False,
) -> None:
    """Apply actions of the rules' vocabulary to one conversation through the core's actions,
    as ``actor`` (a rule or a macro): conversation changes become one ``conversation.updated``,
    notes, replies and templates messages, an email a message in a conversation with its
    address. ``webhook``: the triggering event, its record and the rule id, for
    ``send_webhook`` (rules only). ``skip_unsupported``: a template on a conversation whose
    channel has none is left out (a rule over several channels) instead of refused (a macro)."""
    now = datetime.now(UTC)
    change: dict[str, Any] = {}
    have = set(labels)
    notes: list[tuple[str, bool]] = []
    templates: list[Template] = []
    emails: list[Action] = []
    webhooks: list[str] = []
    for action in actions:
        kind, value = action.type, action.value
        if kind == "assign_agent":
            change["assignee_id"] = value
        elif kind == "unassign":
            change["assignee_id"] = None
        elif kind == "assign_team":
            change["team_id"] = value
        elif kind == "add_labels":
            have |= set(value)  # type: ignore[arg-type]
            change["labels"] = sorted(have)
        elif kind == "remove_labels":
            have -= set(value)  # type: ignore[arg-type]
            change["labels"] = sorted(have)
        elif kind == "set_priority":
            change["priority"] = value
        elif kind == "set_status":
            change["status"] = value
        elif kind == "snooze":
            assert isinstance(value, int)
            change["status"] = "snoozed"
            change["snoozed_until"] = now + timedelta(minutes=value)
        elif kind == "private_note":
            notes.append((str(value), True))
        elif kind == "send_reply":
            content = await conn.fetchval(
                "SELECT content FROM canned_responses WHERE id = $1 AND account_id = $2",
                value,
                account_id,
            )
            if content is None:
                raise Refused("not_found", "not_found", "the canned response no longer exists")
            notes.append((content, False))
        elif kind == "send_webhook":
            webhooks.append(str(value))
        elif kind == "send_template":
            templates.append(
                Template(str(value), action.language or "", tuple(action.parameters or ()))
            )
        elif kind == "send_email":
            emails.append(action)
        elif kind == "mute":
            change["muted"] = True
    if change:
        await update_conversation(
            conn,
            account_id=account_id,
            agent_id="",
            conversation_id=conversation_id,
            changes=Changes(**change),
            now=now,
            actor=actor,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
    for content, private in notes:
        await create_agent_message(
            conn,
            account_id=account_id,
            agent_id=actor.id or "",
            conversation_id=conversation_id,
            content=content,
            private=private,
            client_id=None,
            correlation_id=correlation_id,
            actor=actor,
            causation_id=causation_id,
        )
    for template in templates:
        try:
            await create_agent_message(
                conn, account_id=account_id, agent_id=actor.id or "",
                conversation_id=conversation_id, content="", private=False, client_id=None,
                template=template, correlation_id=correlation_id, actor=actor,
                causation_id=causation_id,
            )  # fmt: skip
        except MessageRefused as exc:  # nothing was written before this refusal
            if not (skip_unsupported and exc.code == "templates_not_supported"):
                raise
            log.info(
                "rules: template left out on a channel without templates",
                extra={"conversation_id": conversation_id, "actor_id": actor.id},
            )
    for mail in emails:
        await send_email(
            conn, account_id=account_id, conversation_id=conversation_id, action=mail,
            actor=actor, correlation_id=correlation_id, causation_id=causation_id,
        )  # fmt: skip
    if webhooks and webhook is not None:
        event, record, rule_id = webhook
        found = {
            r["id"]
            for r in await conn.fetch(
                """SELECT id FROM webhook_subscriptions
                    WHERE account_id = $1 AND id = ANY($2::text[])""",
                account_id,
                webhooks,
            )
        }
        missing = set(webhooks) - found
        if missing:
            raise Refused("not_found", "not_found", "the webhook no longer exists")
        await record_deliveries(
            conn,
            [
                (
                    account_id, hook, f"{event.id}:{rule_id}:{conversation_id}",
                    event.id, event.type, conversation_id,
                    int(record.headers.get("seq", "0")), record.value,
                )
                for hook in webhooks
            ],
        )  # fmt: skip


async def send_email(
    conn: Conn,
    *,
    account_id: str,
    conversation_id: str,
    action: Action,
    actor: Actor,
    correlation_id: str | None,
    causation_id: str | None,
) -> None:
    """``send_email``: a message in the email inbox's conversation with the address (opened by
    the core when there is none), delivered by the channel like an agent's reply; its subject
    names the conversation it is about unless the action gives one."""
    inbox = await conn.fetchval(
        "SELECT channel FROM inboxes WHERE id = $1 AND account_id = $2 AND disabled_at IS NULL",
        action.value,
        account_id,
    )
    if inbox is None or not sends_email(inbox):
        raise Refused("not_found", "not_found", "the email inbox no longer exists or is off")
    mail_conversation = await open_conversation(
        conn, account_id=account_id, inbox_id=str(action.value), address=action.to or "",
        actor=actor, correlation_id=correlation_id, causation_id=causation_id,
    )  # fmt: skip
    subject = action.subject or f"Conversation {conversation_id}"
    await create_agent_message(
        conn, account_id=account_id, agent_id=actor.id or "", conversation_id=mail_conversation,
        content=action.content or "", private=False, client_id=None,
        correlation_id=correlation_id, actor=actor, causation_id=causation_id,
        email={"cc": [], "bcc": [], "subject": subject},
    )  # fmt: skip


BROKEN = (Refused, ConversationRefused, MessageRefused, OutboundRefused, PatternTimeout)


#: the events of a batch that have an enabled rule of their trigger, claimed at once, with the
#: depth of the rule run that caused each (null: none)
_CLAIM = f"""WITH claimed AS ({CLAIM_SQL})
            SELECT DISTINCT c.event_id,
                   (SELECT max(r.depth) FROM automation_rule_runs r
                     WHERE r.event_id = k.cause) AS cause_depth
              FROM claimed c JOIN unnest($2::text[], $3::text[]) AS k(id, cause)
                ON k.id = c.event_id"""

#: which (account, trigger) pairs have an enabled rule, with a fingerprint of all their rules'
#: ids and change times
_ARMED = """SELECT account_id, trigger,
                   count(*) || ':' || coalesce(max(updated_at)::text, '') || ':'
                   || coalesce(sum(hashtext(id || updated_at::text)), 0) AS fingerprint
              FROM automation_rules WHERE account_id = ANY($1::text[])
             GROUP BY account_id, trigger HAVING bool_or(enabled)"""


@dataclasses.dataclass
class _Work:
    """An event of the batch with a rule of one of its triggers, as the batch evaluates it."""

    event: Event[Any]
    triggers: list[str]
    record: BusMessage
    depth: int = 0
    #: the enabled rules of each of its triggers, compiled
    rules: list[CompiledRules] = dataclasses.field(default_factory=list)


class RuleEngine:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        #: counters for tests and the benchmark
        self.evaluated = 0
        self.fired = 0
        #: the enabled rules per account and trigger, parsed and compiled, with the fingerprint
        #: they were read at
        self._cache: dict[tuple[str, str], tuple[str, CompiledRules]] = {}

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [
            await bus.subscribe(topic, GROUP, self.handle, options)
            for topic in (CONVERSATIONS, CONTACTS)
        ]

    async def _rules(
        self, conn: Conn, account_id: str, trigger: str, fingerprint: str
    ) -> CompiledRules:
        """The account's enabled rules of a trigger, parsed and compiled once
        (``rule_evaluator``) and kept while the fingerprint of their ids and change times (read
        once per batch) stays the same: with 200 rules, parsing them was most of the engine's
        time per event, and interpreting their conditions most of the rest."""
        cached = self._cache.get((account_id, trigger))
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        rules = await list_rules(conn, account_id, trigger)
        found = CompiledRules([rule for rule in rules if rule.enabled])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[(account_id, trigger)] = (fingerprint, found)
        return found

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        pending: list[_Work] = []
        for record in batch:
            try:
                event = decode_event(record.value)
            except UnknownEventType:
                continue
            triggers = triggers_of(event)
            if triggers:
                pending.append(_Work(event, triggers, record))
        if not pending:
            return
        # One statement per batch: which triggers have an enabled rule, and their rules'
        # fingerprints (most messages of most accounts have none: nothing else is done).
        armed = {
            (r["account_id"], r["trigger"]): r["fingerprint"]
            for r in await self._pool.fetch(_ARMED, sorted({w.event.account_id for w in pending}))
        }
        work = [w for w in pending if any((w.event.account_id, t) in armed for t in w.triggers)]
        if work:
            await self.run(work, armed)

    async def run(self, work: list[_Work], armed: Mapping[tuple[str, str], str]) -> None:
        """Evaluate the batch's events that have rules: their conversations read with one
        statement for the whole batch and the rules evaluated in memory, writing nothing; only
        from the first event a rule matches on does the batch go on in a transaction that
        claims the events and acts (:meth:`act`). An event no rule matches has no effect, so
        there is nothing to claim: its redelivery evaluates it again and again does nothing
        (at 1,000 messages/s the claims were a thousand rows a second written for nothing)."""
        async with self._pool.acquire() as conn:
            todo = await self._with_rules(conn, work, armed)
            if not todo:
                return
            # per distinct rule set, not per event and rule (20,000 rules for 100 events)
            needs = Needs.of({id(rules): rules for w in todo for rules in w.rules}.values())
            found = await batch_contexts(conn, [w.event for w in todo], needs)
            first = self._first_to_act(todo, found)
            if first is not None:  # later events see what its rules change: they go on too
                await self.act(conn, todo[first:], needs)

    async def _with_rules(
        self, conn: Conn, work: list[_Work], armed: Mapping[tuple[str, str], str]
    ) -> list[_Work]:
        """The events with their enabled rules, compiled, attached (the others left out)."""
        todo: list[_Work] = []
        for w in work:
            for trigger in w.triggers:
                fingerprint = armed.get((w.event.account_id, trigger))
                if fingerprint is not None:
                    rules = await self._rules(conn, w.event.account_id, trigger, fingerprint)
                    if len(rules):
                        w.rules.append(rules)
            if w.rules:
                todo.append(w)
        return todo

    def _first_to_act(self, todo: list[_Work], found: list[list[Context]]) -> int | None:
        """The position of the first event a rule matches on as read (``None``: none)."""
        for i, (w, ctxs) in enumerate(zip(todo, found, strict=True)):
            if any(self._may_fire(w, ctx) for ctx in ctxs):
                return i
            self.evaluated += sum(len(rules) for rules in w.rules) * len(ctxs)
        return None

    @staticmethod
    def _may_fire(w: _Work, ctx: Context) -> bool:
        """Whether a rule of the event matches the conversation as read (a pattern that runs
        too long counts: the transaction turns its rule off)."""
        for rules in w.rules:
            for i in rules.candidates(ctx):
                try:
                    if rules.holds(i, ctx):
                        return True
                except PatternTimeout:
                    return True
        return False

    async def act(self, conn: Conn, work: list[_Work], needs: Needs) -> None:
        """Claim the events (a redelivery does nothing), with how deep in a chain of rule-made
        changes each is, read their conversations again and evaluate and act in event order,
        all in one transaction."""
        async with conn.transaction():
            rows = await conn.fetch(
                _CLAIM,
                GROUP,
                [w.event.id for w in work],
                [w.event.causation_id for w in work],
            )
            claimed = {
                r["event_id"]: 0 if r["cause_depth"] is None else r["cause_depth"] + 1 for r in rows
            }
            todo: list[_Work] = []
            for w in work:
                depth = claimed.pop(w.event.id, None)
                if depth is None:  # handled before (or twice in this batch)
                    continue
                if depth >= MAX_DEPTH:
                    log.info(
                        "rules: chain too deep, not evaluated",
                        extra={"event_id": w.event.id, "depth": depth},
                    )
                    continue
                w.depth = depth
                todo.append(w)
            if not todo:
                return
            found = await batch_contexts(conn, [w.event for w in todo], needs)
            batch = _Batch()
            for w, ctxs in zip(todo, found, strict=True):
                if batch.changed(w.event):  # a rule of an earlier event changed what it is about
                    ctxs = await contexts(conn, w.event, needs)
                for ctx in ctxs:
                    await self._evaluate(conn, w, ctx, batch)

    async def _evaluate(self, conn: Conn, w: _Work, ctx: Context, batch: _Batch) -> None:
        """The event's rules in order on one conversation: only the candidates the compiled
        index lets through are looked at; after a rule acts, the conversation is read again and
        the candidates of the rules after it are found again on what it is now."""
        for rules in w.rules:
            start = 0
            while (fired := await self._first(conn, w, rules, start, ctx, batch)) is not None:
                rule = rules.rules[fired]
                self.fired += 1
                batch.acted.add(ctx.conversation_id)
                ctx = await refreshed(conn, ctx)  # later rules see what this one changed
                await conn.execute(
                    """INSERT INTO automation_rule_runs (event_id, rule_id, account_id,
                                                         conversation_id, depth)
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                    w.event.id,
                    rule.id,
                    w.event.account_id,
                    ctx.conversation_id,
                    w.depth,
                )
                self.evaluated += fired + 1 - start  # decided: the rules up to this one
                if rule.stop_processing:
                    return
                start = fired + 1
            self.evaluated += len(rules) - start

    async def _first(
        self, conn: Conn, w: _Work, rules: CompiledRules, start: int, ctx: Context, batch: _Batch
    ) -> int | None:
        """The position of the first rule from ``start`` on that matches and whose actions ran
        (in a savepoint); a rule that is broken (its action no longer works, its pattern runs
        too long) is turned off and passed."""
        event = w.event
        for i in rules.candidates(ctx, start):
            rule = rules.rules[i]
            if rule.id in batch.turned_off:
                continue
            try:
                if not rules.holds(i, ctx):  # no savepoint (a round trip) for a rule that is
                    continue  # not going to act
                async with conn.transaction():  # a savepoint: a broken rule changes nothing
                    await apply(conn, rule, event, ctx, w.record)
            except BROKEN as exc:
                reason = getattr(exc, "message", None) or f"pattern took too long: {exc}"
                log.warning(
                    "rules: rule turned off",
                    extra={"rule_id": rule.id, "event_id": event.id, "reason": reason},
                )
                await disable_rule(conn, event.account_id, rule.id, reason)
                batch.turned_off.add(rule.id)
                continue
            return i
        return None


@dataclasses.dataclass
class _Batch:
    """What rules did so far in a batch: the conversations they acted on (a later event about
    one reads it again) and the rules they turned off (skipped for the rest of the batch)."""

    acted: set[str] = dataclasses.field(default_factory=set)
    turned_off: set[str] = dataclasses.field(default_factory=set)

    def changed(self, event: Event[Any]) -> bool:
        if isinstance(event.payload, ContactUpdated):
            return bool(self.acted)  # which of the contact's conversations are open may differ
        return event.conversation_id in self.acted


async def current_context(conn: Conn, account_id: str, conversation_id: str) -> Context | None:
    """The conversation as it is now, its last message that is not a private note as the
    message, its latest analysed customer message's findings, its contact's attributes, and its
    inbox's business hours now; ``None``: no such conversation."""
    r = await conn.fetchrow(
        f"""SELECT c.id, c.inbox_id, i.channel, c.status, c.priority, c.labels,
                  m.content, m.direction, ct.attributes, a.language, a.sentiment, a.intents
             FROM conversations c JOIN inboxes i ON i.id = c.inbox_id
             LEFT JOIN contacts ct ON ct.id = c.contact_id
             LEFT JOIN LATERAL (SELECT content, direction FROM messages
                                 WHERE conversation_id = c.id AND NOT private
                                 ORDER BY id DESC LIMIT 1) m ON true{_analysis("NULL::text")}
            WHERE c.id = $1 AND c.account_id = $2""",
        conversation_id,
        account_id,
    )
    if r is None:
        return None
    return Context(
        conversation_id=r["id"], inbox_id=r["inbox_id"], channel=r["channel"],
        status=r["status"], priority=r["priority"], labels=tuple(r["labels"]),
        content=r["content"], direction=r["direction"],
        business_hours=await open_now(conn, r["inbox_id"]), **_findings(None, r),
    )  # fmt: skip


def rule_engine_part() -> StreamConsumer:
    return StreamConsumer(
        "automation-rules", lambda hub: RuleEngine(hub.pool), max_batch=100, linger=LINGER
    )


@dataclasses.dataclass(frozen=True)
class DryRun:
    rule_id: str
    name: str
    enabled: bool
    matched: bool
    would_fire: bool
    reason: str | None


async def dry_run(
    conn: Conn, account_id: str, conversation_id: str, trigger: str
) -> list[DryRun] | None:
    """Which rules of ``trigger`` would fire on the conversation as it is now (its last
    message, if any, as the message), in order and honouring ``stop_processing``; changes
    nothing. ``None``: no such conversation."""
    ctx = await current_context(conn, account_id, conversation_id)
    if ctx is None:
        return None
    found: list[DryRun] = []
    stopped = False
    rules = CompiledRules(await list_rules(conn, account_id, trigger))
    candidates = set(rules.candidates(ctx))
    for i, rule in enumerate(rules.rules):
        reason = None
        try:
            matched = i in candidates and rules.holds(i, ctx)
        except PatternTimeout:
            matched, reason = False, "a pattern took too long on this message"
        if not rule.enabled:
            reason = rule.disabled_reason or "turned off"
        elif stopped:
            reason = "an earlier rule stops processing"
        fires = matched and rule.enabled and not stopped
        found.append(DryRun(rule.id, rule.name, rule.enabled, matched, fires, reason))
        if fires and rule.stop_processing:
            stopped = True
    return found
