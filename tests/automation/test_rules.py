"""Rules end to end through the real hub: they fire on events, act through the core's actions
(their changes are ordinary events with the rule as actor, on the timeline), stop loops, stop
processing when told, refuse what cannot work at save, turn off with a reason when they break
later, and a dry run shows what would fire."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from automation.rule_engine import GROUP, MAX_DEPTH, RuleEngine
from hub.actions.conversations import Changes, update_conversation
from hub.app import Hub
from hub.bus import BusMessage
from hub.ids import new_id
from hub.store.db import create_pool
from tests.automation.conftest import ADMIN
from tests.support.api_channel import ApiInbox, api_body
from tests.support.bus_progress import caught_up

pytestmark = pytest.mark.postgres


async def labels(hub: Hub, *names: str) -> None:
    for name in names:
        await hub.pool.execute(
            "INSERT INTO labels (id, account_id, name) VALUES ($1, $2, $3)",
            new_id(),
            hub.account_id,
            name,
        )


async def agent(hub: Hub, name: str = "Agent") -> str:
    user_id = new_id()
    await hub.pool.execute(
        """INSERT INTO users (id, account_id, email, name, role)
           VALUES ($1, $2, $3, $4, 'administrator')""",
        user_id,
        hub.account_id,
        f"{name.lower()}-{user_id[-6:].lower()}@example.com",
        name,
    )
    return user_id


async def make_rule(http: aiohttp.ClientSession, server: str, **body: Any) -> dict[str, Any]:
    async with http.post(f"{server}/api/v1/automation/rules", json=body, headers=ADMIN) as r:
        assert r.status == 201, await r.text()
        made: dict[str, Any] = await r.json()
        return made


async def refused(http: aiohttp.ClientSession, server: str, **body: Any) -> dict[str, Any]:
    async with http.post(f"{server}/api/v1/automation/rules", json=body, headers=ADMIN) as r:
        assert r.status == 422, await r.text()
        error: dict[str, Any] = (await r.json())["error"]
        return error


async def settled(hub: Hub, within: float = 15.0) -> None:
    """Until the rules engine has handled everything published so far, the events its rules
    made too (an event no rule matches leaves no trace to wait for: the bus's lag says it)."""
    await caught_up(hub, GROUP, within)


async def rule_events(hub: Hub, rule_id: str) -> list[dict[str, Any]]:
    rows = await hub.pool.fetch(
        """SELECT event::jsonb AS e FROM event_log
            WHERE event->'actor'->>'kind' = 'integration' AND event->'actor'->>'id' = $1
            ORDER BY id""",
        rule_id,
    )
    return [r["e"] for r in rows]


async def test_a_rule_fires_and_its_changes_are_events_with_the_rule_as_actor(
    hub: Hub, server: str
) -> None:
    await labels(hub, "billing")
    async with aiohttp.ClientSession() as http:
        rule = await make_rule(
            http,
            server,
            name="Refunds to billing",
            trigger="message_created",
            match="all",
            conditions=[
                {"field": "direction", "op": "equals", "value": "inbound"},
                {"field": "content", "op": "matches", "value": r"\brefund(s|ed)?\b"},
                {"field": "channel", "op": "in", "value": ["api"]},
            ],
            actions=[
                {"type": "add_labels", "value": ["billing"]},
                {"type": "set_priority", "value": "high"},
                {"type": "private_note", "value": "Routed to billing by a rule"},
            ],
        )
        inbox = await ApiInbox.create(hub, server)
        other = await inbox.post(http, api_body("m-0", identifier="+94771000000", text="hello"))
        answer = await inbox.post(http, api_body("m-1", text="I want a REFUND please"))
        conversation = answer["messages"][0]["conversation_id"]
        await settled(hub)

        row = await hub.pool.fetchrow(
            "SELECT labels, priority FROM conversations WHERE id = $1", conversation
        )
        assert row is not None
        assert list(row["labels"]) == ["billing"] and row["priority"] == "high"
        untouched = await hub.pool.fetchrow(
            "SELECT labels, priority FROM conversations WHERE id = $1",
            other["messages"][0]["conversation_id"],
        )
        assert untouched is not None
        assert list(untouched["labels"]) == [] and untouched["priority"] is None

        made = await rule_events(hub, rule["id"])
        assert [e["type"] for e in made] == ["conversation.updated", "message.created"]
        trigger = await hub.pool.fetchval(
            """SELECT id FROM event_log WHERE type = 'message.received'
                AND conversation_id = $1""",
            conversation,
        )
        for event in made:
            assert event["actor"] == {"kind": "integration", "id": rule["id"]}
            assert event["causation_id"] == trigger
        assert made[0]["payload"]["previous"] == {"labels": [], "priority": None}
        assert made[1]["payload"]["private"] is True
        # on the conversation's timeline, with the rule as actor
        async with http.get(
            f"{server}/api/v1/conversations/{conversation}/events", headers=ADMIN
        ) as r:
            timeline = (await r.json())["data"]
        assert {"kind": "integration", "id": rule["id"]} in [e["actor"] for e in timeline]
        note = await hub.pool.fetchrow(
            "SELECT sender_type, sender_id FROM messages WHERE private AND conversation_id = $1",
            conversation,
        )
        assert note is not None
        assert (note["sender_type"], note["sender_id"]) == ("integration", rule["id"])

        # the same event handled again (a redelivery) does nothing more
        raw = await hub.pool.fetchval("SELECT event::text FROM event_log WHERE id = $1", trigger)
        engine = RuleEngine(hub.pool)
        record = BusMessage("conversations", conversation, raw.encode(), 0, 0, {"seq": "1"})
        await engine.handle([record])
        assert engine.evaluated == 0
        assert len(await rule_events(hub, rule["id"])) == 2


async def test_rules_that_retrigger_each_other_stop_at_the_depth_limit(
    hub: Hub, server: str
) -> None:
    await labels(hub, "ping", "pong")
    async with aiohttp.ClientSession() as http:
        ping = await make_rule(
            http, server, name="ping", trigger="conversation_updated", stop_processing=True,
            conditions=[{"field": "labels", "op": "includes", "value": ["ping"]}],
            actions=[{"type": "remove_labels", "value": ["ping"]},
                     {"type": "add_labels", "value": ["pong"]}],
        )  # fmt: skip
        pong = await make_rule(
            http, server, name="pong", trigger="conversation_updated", stop_processing=True,
            conditions=[{"field": "labels", "op": "includes", "value": ["pong"]}],
            actions=[{"type": "remove_labels", "value": ["pong"]},
                     {"type": "add_labels", "value": ["ping"]}],
        )  # fmt: skip
        inbox = await ApiInbox.create(hub, server)
        answer = await inbox.post(http, api_body("m-1"))
        conversation = answer["messages"][0]["conversation_id"]
        async with hub.pool.acquire() as conn, conn.transaction():
            await update_conversation(
                conn,
                account_id=hub.account_id,
                agent_id="tests-admin",
                conversation_id=conversation,
                changes=Changes(labels=["ping"]),
            )
        await settled(hub)
        await asyncio.sleep(0.5)
        await settled(hub)
    # each rule stops processing, so one rule fires per event: ping, pong, ping, and the
    # event that last change made is too deep in the chain to fire anything
    made = await rule_events(hub, ping["id"]) + await rule_events(hub, pong["id"])
    assert len(made) == MAX_DEPTH
    assert list(await hub.pool.fetchval("SELECT labels FROM conversations")) == ["pong"]
    depths = await hub.pool.fetch("SELECT depth FROM automation_rule_runs ORDER BY depth")
    assert [d["depth"] for d in depths] == list(range(MAX_DEPTH))
    assert all(r["enabled"] for r in await hub.pool.fetch("SELECT enabled FROM automation_rules"))


async def test_stop_processing_and_order(hub: Hub, server: str) -> None:
    await labels(hub, "first", "second", "third")
    async with aiohttp.ClientSession() as http:
        for name, stop in (("first", False), ("second", True), ("third", False)):
            await make_rule(
                http, server, name=name, trigger="conversation_created", stop_processing=stop,
                actions=[{"type": "add_labels", "value": [name]}],
            )  # fmt: skip
        inbox = await ApiInbox.create(hub, server)
        answer = await inbox.post(http, api_body("m-1"))
        conversation = answer["messages"][0]["conversation_id"]
        await settled(hub)
        found = await hub.pool.fetchval(
            "SELECT labels FROM conversations WHERE id = $1", conversation
        )
        assert sorted(found) == ["first", "second"]

        async with http.get(
            f"{server}/api/v1/automation/dry_run/{conversation}",
            params={"trigger": "conversation_created"},
            headers=ADMIN,
        ) as r:
            assert r.status == 200, await r.text()
            dry = (await r.json())["data"]
        assert [(d["name"], d["would_fire"]) for d in dry] == [
            ("first", True),
            ("second", True),
            ("third", False),
        ]
        assert dry[2]["reason"] == "an earlier rule stops processing"
        async with http.get(f"{server}/api/v1/automation/dry_run/nope", headers=ADMIN) as r:
            assert r.status == 404


async def test_later_rules_are_looked_up_again_on_what_an_earlier_rule_changed(
    hub: Hub, server: str
) -> None:
    """The compiled index skips a rule the event cannot match (``includes billing`` on a
    conversation without the label), but after a rule acts the rules after it are looked up on
    the conversation as it now is; a rule before it stays decided."""
    await labels(hub, "billing", "saw-billing", "saw-urgent", "early")
    async with aiohttp.ClientSession() as http:
        billing = [{"field": "labels", "op": "includes", "value": ["billing"]}]
        rules = [
            ("early", billing, [{"type": "add_labels", "value": ["early"]}]),
            (
                "refund",
                [{"field": "content", "op": "matches", "value": r"\bref(und|und?s)\b"}],
                [{"type": "add_labels", "value": ["billing"]},
                 {"type": "set_priority", "value": "urgent"}],
            ),
            ("billing", billing, [{"type": "add_labels", "value": ["saw-billing"]}]),
            (
                "urgent",
                [{"field": "priority", "op": "equals", "value": "urgent"}],
                [{"type": "add_labels", "value": ["saw-urgent"]}],
            ),
            (
                "never",
                [{"field": "content", "op": "contains", "value": "invoice"}],
                [{"type": "set_status", "value": "resolved"}],
            ),
        ]  # fmt: skip
        for name, conditions, actions in rules:
            await make_rule(
                http, server, name=name, trigger="message_created", conditions=conditions,
                actions=actions,
            )  # fmt: skip
        inbox = await ApiInbox.create(hub, server)
        answer = await inbox.post(http, api_body("m-1", text="I want a REFUND please"))
        conversation = answer["messages"][0]["conversation_id"]
        await settled(hub)
        row = await hub.pool.fetchrow(
            "SELECT labels, priority, status FROM conversations WHERE id = $1", conversation
        )
        assert row is not None
        assert sorted(row["labels"]) == ["billing", "saw-billing", "saw-urgent"]
        assert (row["priority"], row["status"]) == ("urgent", "open")

        async with http.get(
            f"{server}/api/v1/automation/dry_run/{conversation}",
            params={"trigger": "message_created"},
            headers=ADMIN,
        ) as r:
            assert r.status == 200, await r.text()
            dry = (await r.json())["data"]
        # on the conversation as it is now, the early rule would match too
        assert [(d["name"], d["matched"]) for d in dry] == [
            ("early", True), ("refund", True), ("billing", True), ("urgent", True),
            ("never", False),
        ]  # fmt: skip


async def test_what_cannot_work_is_refused_at_save(hub: Hub, server: str) -> None:
    await labels(hub, "vip")
    ok_action = [{"type": "add_labels", "value": ["vip"]}]
    async with aiohttp.ClientSession() as http:
        for pattern in (r"(a+)+$", r"(\w+\s?)*$", "[unclosed"):
            error = await refused(
                http, server, name="r", trigger="message_created", actions=ok_action,
                conditions=[{"field": "content", "op": "matches", "value": pattern}],
            )  # fmt: skip
            assert error["code"] == "invalid_rule"
            assert error["details"]["path"] == "$.conditions[0].value"
        error = await refused(
            http, server, name="r", trigger="message_created", actions=ok_action,
            conditions=[{"field": "nickname", "op": "equals", "value": "x"}],
        )  # fmt: skip
        assert error["code"] == "invalid_body"
        error = await refused(
            http, server, name="r", trigger="message_created", actions=ok_action,
            conditions=[{"field": "labels", "op": "matches", "value": "x"}],
        )  # fmt: skip
        assert error["details"]["path"] == "$.conditions[0].op"
        for action in (
            {"type": "assign_agent", "value": "no-such-user"},
            {"type": "add_labels", "value": ["unknown"]},
            {"type": "send_reply", "value": "no-such-canned"},
            {"type": "send_webhook", "value": "no-such-webhook"},
            {"type": "snooze", "value": 0},
            {"type": "set_status", "value": "snoozed"},
        ):
            error = await refused(
                http, server, name="r", trigger="message_created", actions=[action]
            )
            assert error["details"]["path"] == "$.actions[0]", action
    assert await hub.pool.fetchval("SELECT count(*) FROM automation_rules") == 0


async def test_a_rule_that_breaks_later_is_turned_off_and_the_others_go_on(
    hub: Hub, server: str
) -> None:
    await labels(hub, "seen")
    leaving = await agent(hub, "Leaving")
    async with aiohttp.ClientSession() as http:
        broken = await make_rule(
            http, server, name="to Leaving", trigger="message_created",
            actions=[{"type": "assign_agent", "value": leaving}],
        )  # fmt: skip
        after = await make_rule(
            http, server, name="label", trigger="message_created",
            actions=[{"type": "add_labels", "value": ["seen"]}],
        )  # fmt: skip
        await hub.pool.execute("UPDATE users SET disabled_at = now() WHERE id = $1", leaving)
        inbox = await ApiInbox.create(hub, server)
        answer = await inbox.post(http, api_body("m-1"))
        conversation = answer["messages"][0]["conversation_id"]
        await settled(hub)
        async with http.get(f"{server}/api/v1/automation/rules/{broken['id']}", headers=ADMIN) as r:
            shown = await r.json()
        assert shown["enabled"] is False
        assert shown["disabled_reason"] == "no such user in this account"
        row = await hub.pool.fetchrow(
            "SELECT assignee_id, labels FROM conversations WHERE id = $1", conversation
        )
        assert row is not None
        assert row["assignee_id"] is None and list(row["labels"]) == ["seen"]
        assert await rule_events(hub, broken["id"]) == []
        assert len(await rule_events(hub, after["id"])) == 1
        audit = await hub.pool.fetchval(
            "SELECT actor_type FROM audit_log WHERE action = 'automation_rule.disabled'"
        )
        assert audit == "system"
        # the consumer goes on: the next message is handled too
        await inbox.post(http, api_body("m-2", identifier="+94770000002"))
        await settled(hub)
        assert len(await rule_events(hub, after["id"])) == 2


async def test_the_cost_of_an_event_does_not_grow_with_rules_that_do_not_match(
    hub: Hub, server: str, db_dsn: str
) -> None:
    """200 rules that do not match: the rules are parsed once, no savepoint per rule, and a
    batch costs the same statements whether it has one event or fifty (the rules' fingerprint
    and the conversations, read once per batch) and writes nothing. Counted in statements, not
    time."""
    await hub.pool.executemany(
        """INSERT INTO automation_rules (id, account_id, name, position, trigger, conditions,
                                         actions)
           VALUES ($1, $2, $3, $4, 'message_created', $5, '[{"type": "unassign"}]')""",
        [
            (new_id(), hub.account_id, f"rule {i}", i,
             [{"field": "content", "op": "contains", "value": f"refund-{i}"}])
            for i in range(200)
        ],
    )  # fmt: skip
    async with aiohttp.ClientSession() as http:
        inbox = await ApiInbox.create(hub, server)
        answer = await inbox.post(http, api_body("m-1", text="hello"))
    conversation = answer["messages"][0]["conversation_id"]
    async with asyncio.timeout(15):
        while not (
            raw := await hub.pool.fetchval(
                """SELECT event::text FROM event_log WHERE type = 'message.received'
                    AND conversation_id = $1""",
                conversation,
            )
        ):
            await asyncio.sleep(0.05)
    pool = await create_pool(db_dsn, 1)
    statements: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: statements.append(q.query))
        engine = RuleEngine(pool)
        counts = []
        for size in (1, 1, 10, 50):
            batch = []
            for offset in range(size):
                event = json.loads(raw)
                event["id"] = new_id()
                body = json.dumps(event).encode()
                batch.append(BusMessage("conversations", conversation, body, 0, offset, {}))
            statements.clear()
            await engine.handle(batch)
            counts.append(len(statements))
        assert engine.evaluated == 200 * 62 and engine.fired == 0
        # the first reads the rules; then, per batch: which triggers have rules (with their
        # fingerprint) and the conversations (with business hours), and nothing is written
        assert counts[1] == counts[2] == counts[3] < counts[0]
        assert counts[3] == 2, statements
        assert not await hub.pool.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = $1", GROUP
        )
    finally:
        await pool.close()
