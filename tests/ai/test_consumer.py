"""The AI consumer end to end through a real hub: a customer's message gets its language,
sentiment and reply suggestions (canned responses, then agents' past replies), once; a person's
erasure empties the indexes of them; a missing model is reported and the rest goes on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from ai.consumer import GROUP
from ai.part import AiPart
from hub.actions.messages import create_agent_message
from hub.app import Hub
from hub.bus import BusMessage
from hub.config import Config
from hub.events import Actor, ActorKind, make_event
from hub.events.types import ContactErased
from hub.ids import new_id
from hub.store.outbox import append_events
from server.compose import build_app
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres

CANNED = {
    "card": "Your new card arrives within 3 to 5 working days after you order it.",
    "pin": "You can change your PIN at any of our ATMs under 'PIN services'.",
    "refund": "Refunds reach your account within 7 days of the merchant's approval.",
}


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(ai=True)


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[str]:
    test_server = TestServer(build_app(hub))
    await test_server.start_server()
    yield str(test_server.make_url("")).rstrip("/")
    await test_server.close()


async def canned(hub: Hub) -> dict[str, str]:
    ids = {}
    for code, content in CANNED.items():
        ids[code] = new_id()
        await hub.pool.execute(
            """INSERT INTO canned_responses (id, account_id, short_code, content)
               VALUES ($1, $2, $3, $4)""",
            ids[code],
            hub.account_id,
            code,
            content,
        )
    return ids


async def analysis(hub: Hub, message_id: str, within: float = 60.0) -> dict[str, Any]:
    """The ``message.analysed`` event of ``message_id`` (waits for it)."""
    async with asyncio.timeout(within):
        while True:
            raw = await hub.pool.fetchval(
                """SELECT event::text FROM event_log WHERE type = 'message.analysed'
                    AND event->'payload'->>'message_id' = $1""",
                message_id,
            )
            if raw is not None:
                found: dict[str, Any] = msgspec.json.decode(raw)
                return found
            await asyncio.sleep(0.1)


async def agent(hub: Hub) -> str:
    user_id = new_id()
    await hub.pool.execute(
        """INSERT INTO users (id, account_id, email, name, role)
           VALUES ($1, $2, $3, 'Agent', 'administrator')""",
        user_id,
        hub.account_id,
        f"agent-{user_id[-6:].lower()}@example.com",
    )
    return user_id


async def reply(hub: Hub, agent_id: str, conversation_id: str, text: str) -> str:
    async with hub.pool.acquire() as conn, conn.transaction():
        made = await create_agent_message(
            conn,
            account_id=hub.account_id,
            agent_id=agent_id,
            conversation_id=conversation_id,
            content=text,
            private=False,
            client_id=None,
        )
    return made.id


async def test_a_customer_message_gets_language_sentiment_and_suggestions_once(
    hub: Hub, server: str
) -> None:
    ids = await canned(hub)
    inbox = await ApiInbox.create(hub, server)
    answer = await inbox.send(api_body("m-1", text="When will my new card arrive? Thanks!"))
    message = answer["messages"][0]
    found = await analysis(hub, message["id"])
    payload = found["payload"]
    assert found["causation_id"] is not None
    assert payload["language"] == "en"
    assert payload["sentiment"] > 0 and payload["sentiment_trend"] == payload["sentiment"]
    assert payload["suggestions"][0]["ref"] == f"canned:{ids['card']}"
    assert len(payload["suggestions"]) == 3
    row = await hub.pool.fetchrow(
        "SELECT language, sentiment FROM messages WHERE id = $1", message["id"]
    )
    assert row is not None and row["language"] == "en" and row["sentiment"] > 0

    sinhala = await inbox.send(api_body("m-2", identifier="+94770000002", text="මගේ කාඩ්පත නැති වුණා"))
    tamil = await inbox.send(
        api_body("m-3", identifier="+94770000003", text="naan romba kashtama irukku, enna pannanum")
    )
    assert (await analysis(hub, sinhala["messages"][0]["id"]))["payload"]["language"] == "si"
    assert (await analysis(hub, tamil["messages"][0]["id"]))["payload"]["language"] == "ta-Latn"

    # the same event handled again (a redelivery) writes nothing more
    part = next(p for p in hub.parts if isinstance(p, AiPart))
    assert part.consumer is not None
    raw = await hub.pool.fetchval(
        """SELECT event::text FROM event_log WHERE type = 'message.received'
            AND event->'payload'->>'message_id' = $1""",
        message["id"],
    )
    record = BusMessage("conversations", message["conversation_id"], raw.encode(), 0, 0, {})
    await part.consumer.handle([record])
    async with asyncio.timeout(30):  # anything it emitted has reached the journal
        while await hub.pool.fetchval("SELECT count(*) FROM outbox"):
            await asyncio.sleep(0.1)
    assert (
        await hub.pool.fetchval(
            """SELECT count(*) FROM event_log WHERE type = 'message.analysed'
                AND event->'payload'->>'message_id' = $1""",
            message["id"],
        )
        == 1
    )
    async with aiohttp.ClientSession() as http, http.get(f"{server}/readyz") as r:
        checks = (await r.json())["checks"]
    assert checks["ai"] == "ok" and checks["ai_embeddings"] == "ok"


async def test_agents_replies_are_learned_and_an_erased_person_is_forgotten(
    hub: Hub, server: str
) -> None:
    inbox = await ApiInbox.create(hub, server)
    agent_id = await agent(hub)
    first = await inbox.send(
        api_body("m-1", identifier="+94771111111", text="My parcel arrived broken")
    )
    question = first["messages"][0]
    await analysis(hub, question["id"])
    answer = "So sorry! Send us a photo and we will ship a replacement today."
    reply_id = await reply(hub, agent_id, question["conversation_id"], answer)
    async with asyncio.timeout(30):
        while not await hub.pool.fetchval("SELECT 1 FROM ai_replies WHERE id = $1", reply_id):
            await asyncio.sleep(0.1)

    later = await inbox.send(
        api_body("m-2", identifier="+94772222222", text="the parcel came damaged, what now?")
    )
    suggested = (await analysis(hub, later["messages"][0]["id"]))["payload"]["suggestions"]
    assert suggested[0] == {
        "ref": f"reply:{reply_id}",
        "text": answer,
        "source": "reply",
        "score": suggested[0]["score"],
    }

    # the first customer erases their data: their message and the reply to it leave the index
    event = make_event(
        ContactErased(
            contact_id=question["contact_id"],
            conversation_ids=(question["conversation_id"],),
            message_ids=(question["id"], reply_id),
        ),
        account_id=hub.account_id,
        conversation_id=None,
        actor=Actor(ActorKind.SYSTEM, "tests"),
    )
    async with hub.pool.acquire() as conn, conn.transaction():
        await append_events(conn, [event])
    async with asyncio.timeout(30):
        while await hub.pool.fetchval(
            """SELECT count(*) FROM ai_replies WHERE contact_id = $1""", question["contact_id"]
        ) or await hub.pool.fetchval(
            "SELECT count(*) FROM ai_message_vectors WHERE contact_id = $1",
            question["contact_id"],
        ):
            await asyncio.sleep(0.1)
    third = await inbox.send(api_body("m-3", identifier="+94773333333", text="my parcel is broken"))
    suggested = (await analysis(hub, third["messages"][0]["id"]))["payload"]["suggestions"]
    assert answer not in [s["text"] for s in suggested]
    assert await hub.pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE consumer = $1", GROUP
    )


class TestMissingModel:
    @pytest.fixture
    def hub_config(self, hub_config: Config, tmp_path: Path) -> Config:
        broken = tmp_path / "model"
        broken.mkdir()
        (broken / "config.json").write_text("{not json")
        return hub_config.replace(ai=True, ai_model_dir=broken)

    async def test_it_is_reported_and_the_rest_goes_on(self, hub: Hub, server: str) -> None:
        await canned(hub)
        inbox = await ApiInbox.create(hub, server)
        answer = await inbox.send(api_body("m-1", text="this is terrible, my card is gone"))
        payload = (await analysis(hub, answer["messages"][0]["id"]))["payload"]
        assert payload["language"] == "en" and payload["sentiment"] < 0
        assert payload["suggestions"] == [] and payload["intents"] == []
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server}/readyz") as r:
                body = await r.json()
            async with http.get(f"{server}/metrics") as r:
                metrics = await r.text()
        assert body["ready"] is True
        assert body["checks"]["ai_embeddings"].startswith("missing: ")
        assert 'hub_ai_model_ready{model="embeddings"} 0.0' in metrics


async def test_intents_feedback_and_summary_over_rest(hub: Hub, server: str) -> None:
    from tests.conftest import ADMIN_TOKEN

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ids = await canned(hub)
    inbox = await ApiInbox.create(hub, server)
    async with aiohttp.ClientSession(headers=admin) as http:
        for label, examples in {
            "card_arrival": ["Where is my new card?", "My card has not arrived yet"],
            "change_pin": ["How do I change my PIN?", "I want a new PIN number"],
        }.items():
            async with http.put(
                f"{server}/api/v1/ai/intents/{label}", json={"examples": examples}
            ) as r:
                assert r.status == 200, await r.text()
        async with http.put(f"{server}/api/v1/ai/intents/x", json={"examples": []}) as r:
            assert r.status == 422
        async with http.get(f"{server}/api/v1/ai/intents") as r:
            assert [i["label"] for i in (await r.json())["data"]] == ["card_arrival", "change_pin"]

        answer = await inbox.send(api_body("m-1", text="My new card still has not arrived."))
        message = answer["messages"][0]
        conversation = message["conversation_id"]
        payload = (await analysis(hub, message["id"]))["payload"]
        assert [i["label"] for i in payload["intents"]][:1] == ["card_arrival"]
        async with http.get(f"{server}/api/v1/conversations/{conversation}/ai") as r:
            latest = await r.json()
        assert latest["message_id"] == message["id"]
        assert latest["suggestions"] == payload["suggestions"]

        used = f"canned:{ids['card']}"
        for _ in range(2):
            async with http.post(
                f"{server}/api/v1/conversations/{conversation}/ai/feedback", json={"ref": used}
            ) as r:
                assert r.status == 204
        async with http.post(
            f"{server}/api/v1/conversations/{conversation}/ai/feedback",
            json={"ref": "'; DROP TABLE x"},
        ) as r:
            assert r.status == 422
        assert (
            await hub.pool.fetchval(
                "SELECT uses FROM ai_suggestion_uses WHERE account_id = $1 AND ref = $2",
                hub.account_id,
                used,
            )
            == 2
        )
        agent_id = await agent(hub)
        await reply(hub, agent_id, conversation, "Sorry! It ships in 3 to 5 working days.")
        async with http.get(f"{server}/api/v1/conversations/{conversation}/summary") as r:
            summary = await r.json()
        assert [line["speaker"] for line in summary["lines"]] == ["customer", "agent"]
        assert summary["language"] == "en" and summary["messages"] == 2
        async with http.delete(f"{server}/api/v1/ai/intents/change_pin") as r:
            assert r.status == 204
        async with http.delete(f"{server}/api/v1/ai/intents/change_pin") as r:
            assert r.status == 404


async def test_the_analysis_may_fall_behind_but_an_erasure_is_never_passed_over(hub: Hub) -> None:
    """On the in-process bus the AI skips its oldest messages rather than hold every other
    consumer to its pace (``max_lag``); a person's erasure is not a message it may skip."""
    from hub.bus.memory import MemoryBus
    from hub.events.types import CONTACTS, CONVERSATIONS

    assert isinstance(hub.bus, MemoryBus)
    topics = hub.bus.broker.topics
    assert topics[CONVERSATIONS].groups[GROUP].options.max_lag == hub.config.ai_max_lag == 500
    assert topics[CONTACTS].groups[GROUP].options.max_lag is None


class TestNeverSkipping:
    @pytest.fixture
    def hub_config(self, hub_config: Config) -> Config:
        return hub_config.replace(ai=True, ai_max_lag=0)

    async def test_max_lag_0_keeps_every_message_for_the_ai(self, hub: Hub) -> None:
        from hub.bus.memory import MemoryBus
        from hub.events.types import CONVERSATIONS

        assert isinstance(hub.bus, MemoryBus)
        assert hub.bus.broker.topics[CONVERSATIONS].groups[GROUP].options.max_lag is None
