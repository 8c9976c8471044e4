"""The rest of the rules' vocabulary through the real hub: the ``sla_breached`` and
``message_analysed`` triggers, conditions on the AI part's findings (language, sentiment,
intent) and on contact attributes, and the ``send_template``, ``send_email`` and ``mute``
actions, each refused at save with the path of the problem when it cannot work."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from automation.rule_engine import GROUP, RuleEngine
from hub.actions.ai import analysed_event, record_analyses
from hub.actions.setup import create_inbox
from hub.actions.sla import announce_sla
from hub.app import Hub
from hub.bus import BusMessage
from hub.events.types import IntentGuess, MessageAnalysed
from hub.ids import new_id
from hub.store.db import create_pool
from tests.automation.conftest import ADMIN
from tests.automation.test_rules import labels, make_rule, refused, rule_events, settled
from tests.support.api_channel import ApiInbox, api_body
from tests.support.graph_mock import (
    CUSTOMER_WA_ID,
    GraphApi,
    graph_api,
    message_webhook,
    signed,
    whatsapp_inbox,
)
from tests.support.provider_mock import ProviderMock
from tests.support.sendgrid_mock import SEND, SendGridApi

pytestmark = pytest.mark.postgres

SENDGRID_KEY = "SG.rules-test-key"


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    sendgrid = SendGridApi()
    sendgrid.keys.add(SENDGRID_KEY)
    provider = ProviderMock(GraphApi(), sendgrid)
    await provider.start()
    yield provider
    await provider.close()


async def conversation_of(http: aiohttp.ClientSession, inbox: ApiInbox, ref: str, **kw: Any) -> str:
    answer = await inbox.post(http, api_body(ref, **kw))
    conversation: str = answer["messages"][0]["conversation_id"]
    return conversation


async def analyse(
    hub: Hub,
    conversation_id: str,
    *,
    language: str | None,
    sentiment: float | None,
    intents: tuple[str, ...] = (),
) -> str:
    """What the AI part does for the conversation's latest customer message: its findings on
    the row and ``message.analysed``, through the core's action; the event id."""
    row = await hub.pool.fetchrow(
        """SELECT m.id, m.inbox_id, e.id AS cause FROM messages m
             JOIN event_log e ON e.type = 'message.received'
                             AND e.conversation_id = m.conversation_id
            WHERE m.conversation_id = $1 AND m.direction = 'inbound'
            ORDER BY m.id DESC, e.id DESC LIMIT 1""",
        conversation_id,
    )
    assert row is not None
    event = analysed_event(
        MessageAnalysed(
            message_id=row["id"], inbox_id=row["inbox_id"], language=language,
            sentiment=sentiment, intents=tuple(IntentGuess(i, 0.9) for i in intents),
        ),
        account_id=hub.account_id, conversation_id=conversation_id, causation_id=row["cause"],
    )  # fmt: skip
    async with hub.pool.acquire() as conn, conn.transaction():
        await record_analyses(conn, [event])
    return event.id


async def conversation_row(hub: Hub, conversation_id: str) -> dict[str, Any]:
    row = await hub.pool.fetchrow(
        "SELECT labels, priority, team_id, muted, status FROM conversations WHERE id = $1",
        conversation_id,
    )
    assert row is not None
    return {**dict(row), "labels": list(row["labels"])}


async def received(hub: Hub, conversation_id: str) -> None:
    """Until the conversation's messages and every event the rules made are through the
    engine and in the journal."""
    await settled(hub)


async def test_sla_breached_fires_a_rule_once_per_breach(hub: Hub, server: str) -> None:
    await labels(hub, "late")
    async with aiohttp.ClientSession() as http:
        rule = await make_rule(
            http, server, name="Breaches are urgent", trigger="sla_breached",
            conditions=[{"field": "channel", "op": "equals", "value": "api"}],
            actions=[{"type": "set_priority", "value": "urgent"},
                     {"type": "add_labels", "value": ["late"]}],
        )  # fmt: skip
        inbox = await ApiInbox.create(hub, server)
        conversation = await conversation_of(http, inbox, "m-1")
        await received(hub, conversation)
    assert (await conversation_row(hub, conversation))["priority"] is None
    async with hub.pool.acquire() as conn, conn.transaction():
        breach = await announce_sla(
            conn, breached=True, account_id=hub.account_id, conversation_id=conversation,
            inbox_id=inbox.id, policy_id=new_id(), metric="first_response", cycle=0,
            due_at=datetime.now(UTC),
        )  # fmt: skip
    await settled(hub)
    row = await conversation_row(hub, conversation)
    assert row["priority"] == "urgent" and row["labels"] == ["late"]
    (made,) = await rule_events(hub, rule["id"])
    assert made["type"] == "conversation.updated" and made["causation_id"] == breach


async def test_rules_on_the_ai_findings_label_and_route(hub: Hub, server: str) -> None:
    await labels(hub, "sinhala", "unhappy")
    team = new_id()
    await hub.pool.execute(
        "INSERT INTO teams (id, account_id, name) VALUES ($1, $2, 'Refunds')", team, hub.account_id
    )
    async with aiohttp.ClientSession() as http:
        sinhala = await make_rule(
            http, server, name="Sinhala writers", trigger="message_analysed",
            conditions=[{"field": "language", "op": "in", "value": ["si", "si-Latn"]},
                        {"field": "direction", "op": "equals", "value": "inbound"}],
            actions=[{"type": "add_labels", "value": ["sinhala"]}],
        )  # fmt: skip
        await make_rule(
            http, server, name="Angry refunds", trigger="message_analysed",
            conditions=[{"field": "sentiment", "op": "equals", "value": "negative"},
                        {"field": "intent", "op": "includes", "value": ["refund"]}],
            actions=[{"type": "assign_team", "value": team}],
        )  # fmt: skip
        # a later message's rule sees the conversation's latest analysis
        await make_rule(
            http, server, name="Still unhappy", trigger="message_created",
            conditions=[{"field": "sentiment", "op": "in", "value": ["negative"]},
                        {"field": "direction", "op": "equals", "value": "inbound"}],
            actions=[{"type": "add_labels", "value": ["unhappy"]}],
        )  # fmt: skip
        inbox = await ApiInbox.create(hub, server)
        angry = await conversation_of(http, inbox, "m-1", identifier="+94771000001")
        calm = await conversation_of(http, inbox, "m-2", identifier="+94771000002")
        await received(hub, angry)
        await received(hub, calm)

        await analyse(hub, angry, language="si", sentiment=-0.7, intents=("refund",))
        await analyse(hub, calm, language="en", sentiment=0.6)
        await settled(hub)
        row = await conversation_row(hub, angry)
        assert row["labels"] == ["sinhala"] and row["team_id"] == team
        other = await conversation_row(hub, calm)
        assert other["labels"] == [] and other["team_id"] is None
        stored = await hub.pool.fetchrow(
            """SELECT language, intents FROM messages
                WHERE conversation_id = $1 AND direction = 'inbound'""",
            angry,
        )
        assert stored is not None
        assert (stored["language"], list(stored["intents"])) == ("si", ["refund"])
        assert [e["type"] for e in await rule_events(hub, sinhala["id"])] == [
            "conversation.updated"
        ]

        await inbox.post(http, api_body("m-3", identifier="+94771000001", text="still nothing"))
        await received(hub, angry)
        await inbox.post(http, api_body("m-4", identifier="+94771000002", text="thanks"))
        await received(hub, calm)
    assert (await conversation_row(hub, angry))["labels"] == ["sinhala", "unhappy"]
    assert (await conversation_row(hub, calm))["labels"] == []


async def test_contact_attribute_conditions(hub: Hub, server: str) -> None:
    await labels(hub, "vip")
    await hub.pool.execute(
        """INSERT INTO contact_attribute_definitions (account_id, key, label, type)
           VALUES ($1, 'tier', 'Tier', 'text'), ($1, 'member', 'Member', 'checkbox')""",
        hub.account_id,
    )
    async with aiohttp.ClientSession() as http:
        error = await refused(
            http, server, name="x", trigger="message_created",
            conditions=[{"field": "contact_attribute", "key": "plan", "op": "is_set"}],
            actions=[{"type": "add_labels", "value": ["vip"]}],
        )  # fmt: skip
        assert error["details"] == {"path": "$.conditions[0].key"}
        error = await refused(
            http, server, name="x", trigger="message_created",
            conditions=[{"field": "contact_attribute", "op": "is_set"}],
            actions=[{"type": "add_labels", "value": ["vip"]}],
        )  # fmt: skip
        assert error["details"] == {"path": "$.conditions[0].key"}
        await make_rule(
            http, server, name="Gold members", trigger="message_created",
            conditions=[
                {"field": "contact_attribute", "key": "tier", "op": "in", "value": ["gold"]},
                {"field": "contact_attribute", "key": "member", "op": "equals", "value": "true"},
            ],
            actions=[{"type": "add_labels", "value": ["vip"]}],
        )  # fmt: skip
        inbox = await ApiInbox.create(hub, server)
        gold = await conversation_of(http, inbox, "m-1", identifier="+94771000011")
        plain = await conversation_of(http, inbox, "m-2", identifier="+94771000012")
        await received(hub, gold)
        await received(hub, plain)
        for conversation, attributes in (
            (gold, {"tier": "gold", "member": True}),
            (plain, {"tier": "gold", "member": False}),
        ):
            await hub.pool.execute(
                """UPDATE contacts SET attributes = $2
                    WHERE id = (SELECT contact_id FROM conversations WHERE id = $1)""",
                conversation,
                attributes,
            )
        await inbox.post(http, api_body("m-3", identifier="+94771000011"))
        await received(hub, gold)
        await inbox.post(http, api_body("m-4", identifier="+94771000012"))
        await received(hub, plain)
    assert (await conversation_row(hub, gold))["labels"] == ["vip"]
    assert (await conversation_row(hub, plain))["labels"] == []


async def test_mute_and_a_template_left_out_where_the_channel_has_none(
    hub: Hub, server: str
) -> None:
    async with aiohttp.ClientSession() as http:
        rule = await make_rule(
            http, server, name="Mute and greet", trigger="message_created",
            conditions=[{"field": "direction", "op": "equals", "value": "inbound"}],
            actions=[{"type": "mute"},
                     {"type": "send_template", "value": "greeting", "language": "si"}],
        )  # fmt: skip
        inbox = await ApiInbox.create(hub, server)
        conversation = await conversation_of(http, inbox, "m-1")
        await received(hub, conversation)
    assert (await conversation_row(hub, conversation))["muted"] is True
    (made,) = await rule_events(hub, rule["id"])
    assert made["type"] == "conversation.updated"
    assert made["payload"]["state"]["muted"] is True
    assert made["payload"]["previous"] == {"muted": False}
    # the API channel has no templates: none was written, and the rule stays on
    assert not await hub.pool.fetchval(
        "SELECT count(*) FROM messages WHERE content_type = 'template'"
    )
    assert await hub.pool.fetchval("SELECT enabled FROM automation_rules WHERE id = $1", rule["id"])
    # resolved while muted: the contact's next message joins it and reopens nothing
    async with aiohttp.ClientSession() as http:
        url = f"{server}/api/v1/conversations/{conversation}"
        async with http.patch(url, json={"status": "resolved"}, headers=ADMIN) as r:
            assert r.status == 200, await r.text()
        assert await conversation_of(http, inbox, "m-2") == conversation
        await received(hub, conversation)
    row = await conversation_row(hub, conversation)
    assert row["status"] == "resolved" and row["muted"] is True
    assert (
        await hub.pool.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1 AND direction = 'inbound'",
            conversation,
        )
        == 2
    )
    # the REST API shows the flag and an agent can lift it
    async with aiohttp.ClientSession() as http:
        url = f"{server}/api/v1/conversations/{conversation}"
        async with http.get(url, headers=ADMIN) as r:
            assert (await r.json())["muted"] is True
        async with http.patch(url, json={"muted": False}, headers=ADMIN) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["muted"] is False
        async with http.patch(url, json={"muted": "no"}, headers=ADMIN) as r:
            assert r.status == 422
    assert (await conversation_row(hub, conversation))["muted"] is False
    # unmuted, the contact's message reopens it as usual
    async with aiohttp.ClientSession() as http:
        assert await conversation_of(http, inbox, "m-3") == conversation
        await received(hub, conversation)
    assert (await conversation_row(hub, conversation))["status"] == "open"


async def test_send_template_goes_out_on_whatsapp(
    hub: Hub, server: str, mock: ProviderMock
) -> None:
    inbox = await whatsapp_inbox(hub, mock)
    async with aiohttp.ClientSession() as http:
        rule = await make_rule(
            http, server, name="Order update", trigger="message_created",
            conditions=[{"field": "inbox_id", "op": "equals", "value": inbox},
                        {"field": "direction", "op": "equals", "value": "inbound"}],
            actions=[{"type": "send_template", "value": "order_update", "language": "en_US",
                      "parameters": ["Nimal", "#2041"]}],
        )  # fmt: skip
        path, body, headers = signed(inbox, message_webhook(wamid="wamid.rules-1"))
        async with http.post(server + path, data=body, headers=headers) as r:
            assert r.status == 200
    async with asyncio.timeout(20):
        while not graph_api(mock).sent:
            await asyncio.sleep(0.05)
    (sent,) = graph_api(mock).sent
    assert sent["type"] == "template" and sent["to"] == CUSTOMER_WA_ID
    assert sent["template"]["name"] == "order_update"
    assert sent["template"]["language"] == {"code": "en_US"}
    stored = await hub.pool.fetchrow(
        "SELECT sender_type, sender_id, template FROM messages WHERE content_type = 'template'"
    )
    assert stored is not None
    assert (stored["sender_type"], stored["sender_id"]) == ("integration", rule["id"])
    assert stored["template"]["body_parameters"] == ["Nimal", "#2041"]


async def test_send_email_opens_a_conversation_and_sendgrid_delivers_it(
    hub: Hub, server: str, mock: ProviderMock
) -> None:
    async with hub.pool.acquire() as conn:
        mail = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="sendgrid", name="Escalations",
            secrets_in={"api_key": SENDGRID_KEY, "parse_token": "parse-token-0123456789abcdef"},
            settings={"address": "support@shop.example", "api_base_url": mock.url,
                      "rate_per_second": 1000},
        )  # fmt: skip
    async with aiohttp.ClientSession() as http:
        rule = await make_rule(
            http, server, name="Tell the manager", trigger="message_created",
            conditions=[{"field": "content", "op": "contains", "value": "lawyer"}],
            actions=[{"type": "send_email", "value": mail.id, "to": "Manager@Shop.Example",
                      "subject": "A customer mentions a lawyer",
                      "content": "Please look at this conversation."}],
        )  # fmt: skip
        inbox = await ApiInbox.create(hub, server)
        conversation = await conversation_of(http, inbox, "m-1", text="I will call my lawyer")
        await received(hub, conversation)
        # a second mention reuses the open conversation with the manager
        await inbox.post(http, api_body("m-2", text="my lawyer again"))
        await received(hub, conversation)
    async with asyncio.timeout(20):
        while len(mock.of(SEND)) < 2:
            await asyncio.sleep(0.05)
    first = mock.of(SEND)[0].json()
    assert first["subject"] == "A customer mentions a lawyer"
    (to,) = first["personalizations"]
    assert to["to"] == [{"email": "Manager@shop.example"}]
    assert any("Please look at this conversation." in c["value"] for c in first["content"])
    mails = await hub.pool.fetch(
        """SELECT m.conversation_id, m.sender_type, m.sender_id FROM messages m
            WHERE m.inbox_id = $1 ORDER BY m.id""",
        mail.id,
    )
    assert len(mails) == 2 and mails[0]["conversation_id"] == mails[1]["conversation_id"]
    assert {(m["sender_type"], m["sender_id"]) for m in mails} == {("integration", rule["id"])}
    created = await hub.pool.fetchval(
        """SELECT event::jsonb FROM event_log
            WHERE type = 'conversation.created' AND conversation_id = $1""",
        mails[0]["conversation_id"],
    )
    assert created["actor"] == {"kind": "integration", "id": rule["id"]}


async def test_what_the_new_vocabulary_cannot_do_is_refused_at_save(hub: Hub, server: str) -> None:
    async with aiohttp.ClientSession() as http:
        inbox_api = await ApiInbox.create(hub, server)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"trigger": "message_analysed",
              "conditions": [{"field": "sentiment", "op": "equals", "value": "angry"}],
              "actions": [{"type": "mute"}]}, "$.conditions[0].value"),
            ({"trigger": "message_analysed",
              "conditions": [{"field": "intent", "op": "equals", "value": "refund"}],
              "actions": [{"type": "mute"}]}, "$.conditions[0].op"),
            ({"trigger": "sla_breached",
              "conditions": [{"field": "language", "key": "x", "op": "is_set"}],
              "actions": [{"type": "mute"}]}, "$.conditions[0].key"),
            ({"trigger": "sla_breached", "actions": [{"type": "mute", "value": "yes"}]},
             "$.actions[0]"),
            ({"trigger": "sla_breached",
              "actions": [{"type": "send_template", "value": "Bad Name", "language": "en"}]},
             "$.actions[0]"),
            ({"trigger": "sla_breached",
              "actions": [{"type": "send_template", "value": "greeting"}]}, "$.actions[0]"),
            ({"trigger": "sla_breached",
              "actions": [{"type": "set_priority", "value": "high", "to": "a@b.example"}]},
             "$.actions[0].to"),
            ({"trigger": "sla_breached",
              "actions": [{"type": "send_email", "value": inbox_api.id,
                           "to": "a@b.example", "content": "hi"}]}, "$.actions[0].value"),
            ({"trigger": "sla_breached",
              "actions": [{"type": "send_email", "value": "no-such-inbox",
                           "to": "a@b.example", "content": "hi"}]}, "$.actions[0].value"),
            ({"trigger": "sla_breached",
              "actions": [{"type": "send_email", "value": inbox_api.id,
                           "to": "not an address", "content": "hi"}]}, "$.actions[0].to"),
            ({"trigger": "sla_breached",
              "actions": [{"type": "send_email", "value": inbox_api.id,
                           "to": "a@b.example"}]}, "$.actions[0].content"),
        ]  # fmt: skip
        for body, path in cases:
            error = await refused(http, server, name="bad", **body)
            assert error["code"] == "invalid_rule", (body, error)
            assert error["details"] == {"path": path}, (body, error)
        # a macro refuses the same things the same way
        async with http.post(
            f"{server}/api/v1/macros",
            json={"name": "bad", "actions": [{"type": "send_email", "value": "nope",
                                              "to": "a@b.example", "content": "hi"}]},
            headers=ADMIN,
        ) as r:  # fmt: skip
            assert r.status == 422
            assert (await r.json())["error"]["details"] == {"path": "$.actions[0].value"}
    assert not await hub.pool.fetchval("SELECT count(*) FROM automation_rules")


async def test_new_triggers_no_rule_listens_to_cost_one_statement_per_batch(
    hub: Hub, server: str, db_dsn: str
) -> None:
    """The engine's pre-filter covers the new triggers: with no rule of theirs, a batch of
    ``sla.breached`` and ``message.analysed`` costs one statement and writes nothing."""
    async with aiohttp.ClientSession() as http:
        inbox = await ApiInbox.create(hub, server)
        conversation = await conversation_of(http, inbox, "m-1")
        await received(hub, conversation)
    engine = RuleEngine(hub.pool)
    analysed = await analyse(hub, conversation, language="si", sentiment=-0.5)
    async with hub.pool.acquire() as conn, conn.transaction():
        breach = await announce_sla(
            conn, breached=True, account_id=hub.account_id, conversation_id=conversation,
            inbox_id=inbox.id, policy_id=new_id(), metric="resolution", cycle=0,
            due_at=datetime.now(UTC),
        )  # fmt: skip
    await settled(hub)
    records = []
    for event_id in (analysed, breach):
        async with asyncio.timeout(15):  # the journal is written after the bus
            while not (
                raw := await hub.pool.fetchval(
                    "SELECT event::text FROM event_log WHERE id = $1", event_id
                )
            ):
                await asyncio.sleep(0.05)
        event = json.loads(raw)
        event["id"] = new_id()  # as new events, not yet claimed
        records.append(
            BusMessage("conversations", conversation, json.dumps(event).encode(), 0, 0, {})
        )
    pool = await create_pool(db_dsn, 1)
    statements: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: statements.append(q.query))
        engine = RuleEngine(pool)
        await engine.handle(records)
    finally:
        await pool.close()
    assert len(statements) == 1 and engine.evaluated == 0
    ids = [json.loads(r.value)["id"] for r in records]
    assert (
        await hub.pool.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2)",
            GROUP,
            ids,
        )
        == 0
    )
    # with a rule of the trigger, the breach is evaluated
    async with aiohttp.ClientSession() as http:
        await make_rule(
            http, server, name="Breach", trigger="sla_breached",
            actions=[{"type": "set_priority", "value": "high"}],
        )  # fmt: skip
    event = json.loads(records[1].value)
    event["id"] = new_id()
    engine = RuleEngine(hub.pool)
    await engine.handle(
        [BusMessage("conversations", conversation, json.dumps(event).encode(), 0, 0, {})]
    )
    assert engine.evaluated == 1 and engine.fired == 1
