"""Contacts over REST: create with identities (409 on an owned address), read, search by name or
address, rename and merge attributes (with their events), delete (409 with conversations)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from hub.actions.setup import create_inbox, hash_token
from hub.app import Hub
from hub.config import Config
from hub.ids import new_id
from tests.api.world import _conversation
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(rate_limit_address=0.0, rate_limit_token=0.0)


async def agent_auth(hub: Hub, inboxes: tuple[str, ...] = ()) -> dict[str, str]:
    user_id, token = new_id(), f"tok-{new_id()}"
    async with hub.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO users (id, account_id, email, role) VALUES ($1, $2, $3, 'agent')",
            user_id,
            hub.account_id,
            f"{user_id}@example.com",
        )
        for inbox_id in inboxes:
            await conn.execute(
                "INSERT INTO inbox_members (inbox_id, user_id) VALUES ($1, $2)", inbox_id, user_id
            )
        await conn.execute(
            """INSERT INTO api_tokens (id, account_id, name, role, token_hash, user_id)
               VALUES ($1, $2, 'test', 'agent', $3, $4)""",
            new_id(),
            hub.account_id,
            hash_token(token),
            user_id,
        )
    return {"Authorization": f"Bearer {token}"}


async def create(
    client: Client, body: dict[str, Any], auth: dict[str, str] = ADMIN
) -> tuple[int, Any]:
    response = await client.post("/api/v1/contacts", json=body, headers=auth)
    return response.status, await response.json()


async def contact_events(
    hub: Hub, contact_id: str, until: Callable[[Any], bool]
) -> list[dict[str, Any]]:
    """The journal's events of a contact once one matching ``until`` is logged (contact events
    are keyed by contact, so every earlier one is logged by then)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        rows = await hub.pool.fetch(
            """SELECT event FROM event_log
                WHERE type LIKE 'contact.%' AND event->'payload'->>'contact_id' = $1
                ORDER BY id""",
            contact_id,
        )
        events = [orjson.loads(r["event"]) for r in rows]
        if any(until(e) for e in events) or loop.time() > deadline:
            return events
        await asyncio.sleep(0.05)


async def test_create_read_update_with_events(client: Client, hub: Hub) -> None:
    status, made = await create(
        client,
        {
            "name": "Nimal Perera",
            "attributes": {"tier": "gold", "city": "Kandy", "tags": ["a", {"b": 1}]},
            "identities": [
                {"channel": "whatsapp", "address": "+94771234567"},
                {"channel": "email", "address": "nimal@example.com"},
            ],
        },
    )
    assert status == 201, made
    contact_id = made["id"]
    assert made["identities"] == [
        {"channel": "email", "address": "nimal@example.com"},
        {"channel": "whatsapp", "address": "+94771234567"},
    ]
    got = await (await client.get(f"/api/v1/contacts/{contact_id}", headers=ADMIN)).json()
    assert got == made

    response = await client.patch(
        f"/api/v1/contacts/{contact_id}",
        json={"name": "Nimal P.", "attributes": {"tier": "platinum", "city": None, "new": 1}},
        headers=ADMIN,
    )
    assert response.status == 200
    updated = await response.json()
    assert updated["name"] == "Nimal P."
    assert updated["attributes"] == {"tier": "platinum", "tags": ["a", {"b": 1}], "new": 1}

    # no change (same name, same values, removing an absent key): no event; then a change
    same = await client.patch(
        f"/api/v1/contacts/{contact_id}",
        json={"name": "Nimal P.", "attributes": {"new": 1, "gone": None}},
        headers=ADMIN,
    )
    assert same.status == 200
    assert (await same.json()) == updated
    renamed = await client.patch(
        f"/api/v1/contacts/{contact_id}", json={"name": None}, headers=ADMIN
    )
    assert (await renamed.json())["name"] is None

    events = await contact_events(
        hub, contact_id, lambda e: e["type"] == "contact.updated" and e["payload"]["name"] is None
    )
    assert [e["type"] for e in events] == ["contact.created", "contact.updated", "contact.updated"]
    created, first, second = (e["payload"] for e in events)
    assert created["name"] == "Nimal Perera"
    assert {(i["channel"], i["address"]) for i in created["identities"]} == {
        ("whatsapp", "+94771234567"),
        ("email", "nimal@example.com"),
    }
    assert first["changed"] == ["name", "attributes"]
    assert second["changed"] == ["name"]
    assert events[0]["actor"] == {"kind": "agent", "id": "tests-admin"}


async def test_invisible_characters_are_removed_from_names(client: Client, hub: Hub) -> None:
    """Bidirectional overrides and isolates and other invisible format characters never reach
    agents in a contact's name, through creation, renaming or the events."""
    status, made = await create(client, {"name": "\u202aNimal\u202e lerep\u202c\u2069"})
    assert status == 201 and made["name"] == "Nimal lerep", made
    response = await client.patch(
        f"/api/v1/contacts/{made['id']}",
        json={"name": "\u2067A\u200bli\u00ad\u2060"},
        headers=ADMIN,
    )
    assert (await response.json())["name"] == "Ali"
    emoji = "Ana \U0001f468\u200d\U0001f469\u200d\U0001f467"  # a family: joiners stay
    response = await client.patch(
        f"/api/v1/contacts/{made['id']}", json={"name": emoji}, headers=ADMIN
    )
    assert (await response.json())["name"] == emoji
    events = await contact_events(
        hub, made["id"], lambda e: e["type"] == "contact.updated" and e["payload"]["name"] == emoji
    )
    assert [e["payload"]["name"] for e in events] == ["Nimal lerep", "Ali", emoji]


async def test_an_owned_address_is_a_conflict(client: Client, hub: Hub) -> None:
    status, _ = await create(
        client, {"name": "A", "identities": [{"channel": "sms", "address": "+9477"}]}
    )
    assert status == 201
    status, body = await create(
        client,
        {
            "name": "B",
            "identities": [
                {"channel": "email", "address": "b@example.com"},
                {"channel": "sms", "address": "+9477"},
            ],
        },
    )
    assert status == 409
    assert body["error"]["details"] == {"taken": [{"channel": "sms", "address": "+9477"}]}
    # nothing of the refused contact was kept: its other address is still free
    assert await hub.pool.fetchval("SELECT count(*) FROM contacts") == 1
    status, _ = await create(
        client, {"name": "C", "identities": [{"channel": "email", "address": "b@example.com"}]}
    )
    assert status == 201
    # the same address on another channel is another identity
    status, _ = await create(
        client, {"name": "D", "identities": [{"channel": "whatsapp", "address": "+9477"}]}
    )
    assert status == 201


async def test_bad_contacts_are_refused(client: Client, hub: Hub) -> None:
    bodies: list[dict[str, Any]] = [
        {"identities": [{"channel": "sms", "address": "1"}, {"channel": "sms", "address": "1"}]},
        {"name": ""},
        {"name": "a\x00b"},
        {"attributes": {"k": "a\x00b"}},
        {"attributes": {"a\x00": 1}},
        {"attributes": {"deep": [[[[[[[[[[1]]]]]]]]]]}},
        {"attributes": {"big": "x" * 20_000}},
        {"identities": [{"channel": "SMS!", "address": "1"}]},
        {"identities": [{"channel": "sms", "address": ""}]},
        {"nickname": "x"},
        {"attributes": []},
    ]
    for body in bodies:
        status, answer = await create(client, body)
        assert status == 422, body
        assert answer["error"]["code"] == "invalid_body"
    assert await hub.pool.fetchval("SELECT count(*) FROM contacts") == 0
    missing = new_id()
    assert (await client.get(f"/api/v1/contacts/{missing}", headers=ADMIN)).status == 404
    assert (await client.get("/api/v1/contacts/%00", headers=ADMIN)).status == 404
    response = await client.patch(f"/api/v1/contacts/{missing}", json={}, headers=ADMIN)
    assert response.status == 404


async def test_search_by_name_or_address_and_pages(client: Client, hub: Hub) -> None:
    people = [
        ("Amaya", "whatsapp", "+94770000001"),
        ("amal", "email", "amal@example.com"),
        ("Bandara", "sms", "+94770000002"),
        ("Élise", "email", "elise@example.org"),
        ("Chen", "email", "AMY@example.net"),
    ]
    ids: dict[str, str] = {}
    for name, channel, address in people:
        status, made = await create(
            client, {"name": name, "identities": [{"channel": channel, "address": address}]}
        )
        assert status == 201
        ids[name] = made["id"]

    async def search(q: str | None, limit: int = 2) -> list[str]:
        found: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": str(limit)}
            if q is not None:
                params["q"] = q
            if cursor:
                params["cursor"] = cursor
            response = await client.get("/api/v1/contacts", params=params, headers=ADMIN)
            assert response.status == 200, await response.text()
            page = await response.json()
            found += [c["name"] for c in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    everyone = [name for name, _, _ in reversed(people)]  # newest first
    assert await search(None) == everyone
    assert await search(None, limit=200) == everyone
    assert await search("am") == ["Chen", "amal", "Amaya"]  # AMY@... by address
    assert await search("ama") == ["amal", "Amaya"]
    assert await search("+9477") == ["Bandara", "Amaya"]
    assert await search("+94770000002") == ["Bandara"]  # an exact address
    assert await search("éli") == ["Élise"]
    assert await search("elise@example.org") == ["Élise"]
    assert await search("zz") == []
    bad = await client.get("/api/v1/contacts", params={"cursor": "nope"}, headers=ADMIN)
    assert bad.status == 400


async def test_delete_and_who_may(client: Client, hub: Hub) -> None:
    async with hub.pool.acquire() as conn:
        inbox = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name="Shop"
        )
    agent = await agent_auth(hub)  # a member of no inbox: contacts are account-wide
    status, talked = await create(client, {"name": "Talked"}, auth=agent)
    assert status == 201
    status, quiet = await create(
        client, {"name": "Quiet", "identities": [{"channel": "sms", "address": "+1"}]}, auth=agent
    )
    assert status == 201
    await hub.pool.execute(
        """INSERT INTO conversations (id, account_id, inbox_id, contact_id)
           VALUES ($1, $2, $3, $4)""",
        new_id(),
        hub.account_id,
        inbox.id,
        talked["id"],
    )
    listed = await (await client.get("/api/v1/contacts", headers=agent)).json()
    assert {c["id"] for c in listed["data"]} == {talked["id"], quiet["id"]}

    forbidden = await client.delete(f"/api/v1/contacts/{quiet['id']}", headers=agent)
    assert forbidden.status == 403
    conflict = await client.delete(f"/api/v1/contacts/{talked['id']}", headers=ADMIN)
    assert conflict.status == 409
    deleted = await client.delete(f"/api/v1/contacts/{quiet['id']}", headers=ADMIN)
    assert deleted.status == 204
    assert (await client.get(f"/api/v1/contacts/{quiet['id']}", headers=ADMIN)).status == 404
    again = await client.delete(f"/api/v1/contacts/{quiet['id']}", headers=ADMIN)
    assert again.status == 404
    # its address is free again
    status, _ = await create(client, {"identities": [{"channel": "sms", "address": "+1"}]})
    assert status == 201
    logged = await hub.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'contact.deleted' AND object_id = $1",
        quiet["id"],
    )
    assert logged == 1


async def test_contacts_by_inbox_limits_agents_to_their_inboxes_contacts(
    client: Client, hub: Hub
) -> None:
    """Off (the default) an agent sees every contact; with the account's ``contacts_by_inbox``
    on, only those with a conversation in the agent's inboxes (others answer 404, even to a
    change); administrators still see all."""
    async with hub.pool.acquire() as conn:
        shop = await create_inbox(conn, hub.box, account_id=hub.account_id, channel="api", name="S")
        bank = await create_inbox(conn, hub.box, account_id=hub.account_id, channel="api", name="B")
        mine, _ = await _conversation(conn, hub.account_id, shop.id, "Mine")
        theirs, _ = await _conversation(conn, hub.account_id, bank.id, "Theirs")
    _, lonely = await create(client, {"name": "Lonely"})
    agent = await agent_auth(hub, (shop.id,))

    async def names(auth: dict[str, str]) -> set[str]:
        response = await client.get("/api/v1/contacts", headers=auth)
        assert response.status == 200
        return {c["name"] for c in (await response.json())["data"]}

    assert await names(agent) == {"Mine", "Theirs", "Lonely"}
    response = await client.patch(
        "/api/v1/account", json={"contacts_by_inbox": True}, headers=ADMIN
    )
    assert response.status == 200 and (await response.json())["contacts_by_inbox"] is True

    assert await names(agent) == {"Mine"}
    assert await names(ADMIN) == {"Mine", "Theirs", "Lonely"}
    found = await client.get("/api/v1/contacts?q=the", headers=agent)
    assert (await found.json())["data"] == []
    for contact_id in (theirs, lonely["id"]):
        got = await client.get(f"/api/v1/contacts/{contact_id}", headers=agent)
        assert got.status == 404
        changed = await client.patch(
            f"/api/v1/contacts/{contact_id}", json={"name": "x"}, headers=agent
        )
        assert changed.status == 404
    assert (await client.get(f"/api/v1/contacts/{mine}", headers=agent)).status == 200
    status, made = await create(client, {"name": "New"}, agent)
    assert status == 201 and made["name"] == "New", "the creator gets the reply"
