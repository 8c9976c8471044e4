"""The automation consumers handle a bus batch with statements per batch, not per event: the
results are those of the events one by one (a later event sees what an earlier one's rule
changed; clocks come out the same), a failing action loses no other event of the batch (the bus
hands it again record by record), and events nothing acts on cost one statement per batch (and,
for the consumers that have nothing configured, no claim row)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from automation.assigner import GROUP as ASSIGNMENT
from automation.assigner import Assigner
from automation.bots import BotFeeder
from automation.no_reply import NoReplyWaits
from automation.out_of_office import OutOfOffice
from automation.rule_engine import GROUP as RULES
from automation.rule_engine import RuleEngine
from automation.sla import GROUP as SLA
from automation.sla import SlaClocks
from automation.webhook_recorder import WebhookRecorder
from hub.app import Hub
from hub.bus import BusMessage, ConsumerOptions, OutRecord
from hub.bus.delivery import deliver
from hub.ids import new_id
from hub.store.db import create_pool
from tests.automation.conftest import ADMIN
from tests.automation.test_assignment import members, policy
from tests.automation.test_rules import labels, make_rule
from tests.support.api_channel import ApiInbox, api_body
from tests.support.bus_progress import caught_up

pytestmark = pytest.mark.postgres

#: the events the SLA clocks look at
CLOCK_TYPES = (
    "conversation.created",
    "conversation.updated",
    "message.received",
    "message.created",
)


async def journalled(
    hub: Hub, conversation_id: str, types: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The conversation's events of ``types`` in journal order, once ``group`` has seen them."""
    rows = await hub.pool.fetch(
        """SELECT event::text AS event FROM event_log
            WHERE conversation_id = $1 AND type = ANY($2::text[]) ORDER BY id""",
        conversation_id,
        list(types),
    )
    return [json.loads(r["event"]) for r in rows]


async def seen(hub: Hub, group: str, conversation_id: str, types: tuple[str, ...]) -> None:
    """Until the conversation's events of ``types`` are in the journal and ``group`` has
    handled everything published so far."""
    async with asyncio.timeout(20):
        while not await hub.pool.fetchval(
            "SELECT 1 FROM event_log WHERE conversation_id = $1 AND type = ANY($2::text[])",
            conversation_id,
            list(types),
        ):
            await asyncio.sleep(0.05)
    await caught_up(hub, group)


Consumer = NoReplyWaits | BotFeeder | WebhookRecorder | RuleEngine | OutOfOffice


def record(event: dict[str, Any], offset: int = 0, fresh: bool = True) -> BusMessage:
    """A bus record of the event (as a new event with its own id when ``fresh``)."""
    if fresh:
        event = {**event, "id": new_id()}
    headers = {"type": event["type"], "event_id": event["id"]}
    body = json.dumps(event).encode()
    return BusMessage("conversations", event["conversation_id"], body, 0, offset, headers)


async def conversation_of(http: aiohttp.ClientSession, inbox: ApiInbox, text: str, who: str) -> str:
    answer = await inbox.post(http, api_body(new_id(), identifier=who, text=text))
    conversation: str = answer["messages"][0]["conversation_id"]
    return conversation


async def test_a_later_event_of_a_batch_sees_what_an_earlier_events_rule_changed(
    hub: Hub, server: str
) -> None:
    await labels(hub, "seen")
    async with aiohttp.ClientSession() as http:
        inbox = await ApiInbox.create(hub, server)
        conversation = await conversation_of(http, inbox, "first", "+94770000001")
        await inbox.post(http, api_body(new_id(), identifier="+94770000001", text="second"))
        await seen(hub, RULES, conversation, ("message.received",))
        # the rules come after the messages: only the batch below evaluates them
        await make_rule(
            http, server, name="Mark", trigger="message_created",
            conditions=[{"field": "content", "op": "contains", "value": "first"}],
            actions=[{"type": "add_labels", "value": ["seen"]}],
        )  # fmt: skip
        await make_rule(
            http, server, name="Escalate", trigger="message_created", match="all",
            conditions=[{"field": "labels", "op": "includes", "value": ["seen"]},
                        {"field": "content", "op": "contains", "value": "second"}],
            actions=[{"type": "set_priority", "value": "high"}],
        )  # fmt: skip
    first, second = await journalled(hub, conversation, ("message.received",))
    engine = RuleEngine(hub.pool)
    await engine.handle([record(first, 0), record(second, 1)])
    row = await hub.pool.fetchrow(
        "SELECT labels, priority FROM conversations WHERE id = $1", conversation
    )
    assert row is not None
    assert list(row["labels"]) == ["seen"] and row["priority"] == "high"
    assert engine.fired == 2


async def test_a_failing_action_loses_no_other_event_of_the_batch(hub: Hub, server: str) -> None:
    async with aiohttp.ClientSession() as http:
        inbox = await ApiInbox.create(hub, server)
        conversations = [
            await conversation_of(http, inbox, f"help {i}", f"+9477000001{i}") for i in range(3)
        ]
        for conversation in conversations:
            await seen(hub, RULES, conversation, ("message.received",))
        rule = await make_rule(
            http, server, name="Urgent", trigger="message_created",
            conditions=[{"field": "content", "op": "contains", "value": "help"}],
            actions=[{"type": "set_priority", "value": "urgent"}],
        )  # fmt: skip
    # the database refuses the change on the middle conversation (a storage failure, not a
    # broken rule)
    await hub.pool.execute(
        f"""CREATE FUNCTION refuse_urgent() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.id = '{conversations[1]}' AND NEW.priority = 'urgent' THEN
                RAISE EXCEPTION 'storage refused';
              END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_urgent BEFORE UPDATE ON conversations
               FOR EACH ROW EXECUTE FUNCTION refuse_urgent();"""
    )
    try:
        batch = [
            record((await journalled(hub, c, ("message.received",)))[0], i)
            for i, c in enumerate(conversations)
        ]
        dead: list[OutRecord] = []

        async def dead_letter(out: OutRecord) -> None:
            dead.append(out)

        options = ConsumerOptions(max_attempts=2, backoff_initial=0.01)
        await deliver(RuleEngine(hub.pool).handle, batch, options, RULES, dead_letter)
    finally:
        await hub.pool.execute(
            "DROP TRIGGER refuse_urgent ON conversations; DROP FUNCTION refuse_urgent()"
        )
    priorities = [
        await hub.pool.fetchval("SELECT priority FROM conversations WHERE id = $1", c)
        for c in conversations
    ]
    assert priorities[0] == "urgent" and priorities[2] == "urgent"
    assert priorities[1] != "urgent"
    assert [d.headers["event_id"] for d in dead] == [batch[1].headers["event_id"]]
    runs = await hub.pool.fetch(
        "SELECT event_id FROM automation_rule_runs WHERE rule_id = $1 ORDER BY event_id",
        rule["id"],
    )
    assert {r["event_id"] for r in runs} >= {
        batch[0].headers["event_id"],
        batch[2].headers["event_id"],
    }
    assert batch[1].headers["event_id"] not in {r["event_id"] for r in runs}
    # a storage failure does not turn the rule off
    assert await hub.pool.fetchval("SELECT enabled FROM automation_rules WHERE id = $1", rule["id"])


async def test_sla_clocks_from_one_batch_are_those_of_the_stream(
    hub: Hub, server: str, db_dsn: str
) -> None:
    async with aiohttp.ClientSession() as http:
        inbox = await ApiInbox.create(hub, server)
        # no policy: a batch of the events costs one statement and writes nothing
        quiet = await conversation_of(http, inbox, "hello", "+94770000021")
        await seen(hub, SLA, quiet, CLOCK_TYPES)
        copies = [record(e, i) for i, e in enumerate(await journalled(hub, quiet, CLOCK_TYPES))]
        pool = await create_pool(db_dsn, 1)
        statements: list[str] = []
        try:
            async with pool.acquire() as conn:
                conn.add_query_logger(lambda q: statements.append(q.query))
            consumer = SlaClocks(pool)
            await consumer.handle(copies[:1])  # the connection learns the statement's types
            statements.clear()
            await consumer.handle(copies[1:])
        finally:
            await pool.close()
        assert len(statements) == 1, statements
        assert not await hub.pool.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2)",
            SLA,
            [c.headers["event_id"] for c in copies],
        )

        # with a policy: first response answered, then the customer writes again
        async with http.post(
            f"{server}/api/v1/sla_policies",
            json={"name": "Gold", "first_response_minutes": 30, "next_response_minutes": 20,
                  "resolution_minutes": 600, "warning_minutes": 5},
            headers=ADMIN,
        ) as r:  # fmt: skip
            assert r.status == 201, await r.text()
        conversation = await conversation_of(http, inbox, "hello", "+94770000022")
        async with http.post(
            f"{server}/api/v1/conversations/{conversation}/messages",
            json={"content": "On it"},
            headers=ADMIN,
        ) as r:
            assert r.status in (200, 201), await r.text()
        await inbox.post(http, api_body(new_id(), identifier="+94770000022", text="and?"))
    await seen(hub, SLA, conversation, CLOCK_TYPES)
    clocks = """SELECT policy_id, metric, cycle, started_at, warn_at, due_at, stopped_at,
                       warned, breached
                  FROM sla_clocks WHERE conversation_id = $1 ORDER BY metric, cycle"""
    by_stream = [dict(r) for r in await hub.pool.fetch(clocks, conversation)]
    assert [(c["metric"], c["cycle"]) for c in by_stream] == [
        ("first_response", 0), ("next_response", 1), ("resolution", 0)
    ]  # fmt: skip
    # the same events again as one batch, from no clocks at all
    events = await journalled(hub, conversation, CLOCK_TYPES)
    await hub.pool.execute("DELETE FROM sla_clocks WHERE conversation_id = $1", conversation)
    await hub.pool.execute(
        "DELETE FROM processed_events WHERE consumer = $1 AND event_id = ANY($2)",
        SLA,
        [e["id"] for e in events],
    )
    await SlaClocks(hub.pool).handle([record(e, i, fresh=False) for i, e in enumerate(events)])
    by_batch = [dict(r) for r in await hub.pool.fetch(clocks, conversation)]
    # an answer already in the conversation stops first response at the message's time, the
    # reply's event at the event's: the same instant but for the moment each was taken
    for stream, batch in zip(by_stream, by_batch, strict=True):
        stopped = stream.pop("stopped_at"), batch.pop("stopped_at")
        assert (stopped[0] is None) == (stopped[1] is None)
        if stopped[0] is not None:
            assert abs((stopped[0] - stopped[1]).total_seconds()) < 1
    assert by_batch == by_stream


async def test_assignment_costs_one_statement_per_batch_without_a_policy(
    hub: Hub, server: str, db_dsn: str
) -> None:
    async with aiohttp.ClientSession() as http:
        inbox = await ApiInbox.create(hub, server)
        conversation = await conversation_of(http, inbox, "hello", "+94770000031")
    types = ("conversation.created",)
    await seen(hub, ASSIGNMENT, conversation, types)
    created = (await journalled(hub, conversation, types))[0]
    pool = await create_pool(db_dsn, 1)
    statements: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: statements.append(q.query))
        copies = [record(created, i) for i in range(5)]
        # the hub's parts as the consumer uses them, with a pool that logs its statements
        consumer = Assigner(SimpleNamespace(pool=pool, presence=hub.presence))  # type: ignore[arg-type]
        await consumer.handle(copies[:1])  # the connection learns the statement's types
        statements.clear()
        await consumer.handle(copies[1:])
    finally:
        await pool.close()
    assert len(statements) == 1, statements
    assert not await hub.pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2)",
        ASSIGNMENT,
        [c.headers["event_id"] for c in copies],
    )
    # with a policy on the inbox, the same event assigns the conversation
    (agent,) = await members(hub, inbox.id, 1)
    await policy(server, inbox.id, strategy="round_robin", only_online=False)
    await Assigner(hub).handle([record(created)])
    assert (
        await hub.pool.fetchval("SELECT assignee_id FROM conversations WHERE id = $1", conversation)
        == agent
    )


@pytest.mark.parametrize(
    "which", ["no-reply-waits", "agent-bots", "webhooks", "automation-rules", "out-of-office"]
)
async def test_consumers_with_nothing_configured_cost_one_statement_per_batch(
    hub: Hub, server: str, db_dsn: str, which: str
) -> None:
    """No ``no_reply`` rule, no bot, no webhook subscription, no rule, no out-of-office reply:
    a batch is one statement (no transaction) and no claim row per event (an event with no
    effect has nothing to guard against doing twice)."""
    async with aiohttp.ClientSession() as http:
        inbox = await ApiInbox.create(hub, server)
        conversation = await conversation_of(http, inbox, "hello", "+94770000032")
    types = ("message.received",)
    await seen(hub, which, conversation, types)
    received = (await journalled(hub, conversation, types))[0]
    pool = await create_pool(db_dsn, 1)
    statements: list[str] = []
    recorded = asyncio.Event()
    consumers: dict[str, Callable[[], Consumer]] = {
        "no-reply-waits": lambda: NoReplyWaits(pool),
        "agent-bots": lambda: BotFeeder(pool, recorded),
        "webhooks": lambda: WebhookRecorder(pool, recorded),
        "automation-rules": lambda: RuleEngine(pool),
        "out-of-office": lambda: OutOfOffice(pool),
    }
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: statements.append(q.query))
        copies = [record(received, i) for i in range(5)]
        consumer = consumers[which]()
        await consumer.handle(copies[:1])  # the connection learns the statement's types
        statements.clear()
        await consumer.handle(copies[1:])
    finally:
        await pool.close()
    assert len(statements) == 1, statements
    assert not await hub.pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2)",
        which,
        [c.headers["event_id"] for c in copies],
    )
    assert not recorded.is_set()
