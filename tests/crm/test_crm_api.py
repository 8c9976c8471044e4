"""The CRM over REST: merging contacts (everything moves, the old id redirects, refusals change
nothing), suggested merges, typed attribute definitions, companies and contact notes, with
contacts limited by inbox where the account says so."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from channels._base import InboundMessage, Sender
from hub.actions.ingest import IngestRequest, ingest_batch
from hub.actions.setup import create_inbox
from hub.app import Hub
from hub.config import Config
from hub.ids import new_id
from hub.store.reads import load_inbox
from tests.api.test_contacts_api import agent_auth, contact_events
from tests.api.world import _conversation
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(rate_limit_address=0.0, rate_limit_token=0.0)


async def inbox(hub: Hub, name: str = "Shop") -> str:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name=name
        )
    return made.id


async def person(hub: Hub, inbox_id: str, name: str) -> tuple[str, str]:
    """A contact with an ``api`` identity and an open conversation in the inbox."""
    async with hub.pool.acquire() as conn:
        return await _conversation(conn, hub.account_id, inbox_id, name)


async def snapshot(hub: Hub) -> list[Any]:
    """What a refused merge must leave exactly as it was."""
    return [
        await hub.pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
        for table in ("contacts", "contact_identities", "conversations", "contact_notes")
    ] + [await hub.pool.fetchval("SELECT count(*) FROM outbox")]


async def test_merge_moves_everything_and_the_old_id_answers_the_survivor(
    hub: Hub, client: Client
) -> None:
    shop, bank = await inbox(hub, "Shop"), await inbox(hub, "Bank")
    kept, kept_conversation = await person(hub, shop, "Kamala")
    gone, gone_conversation = await person(hub, bank, "Kamala P")
    await client.patch(
        f"/api/v1/contacts/{kept}", json={"attributes": {"city": "Kandy"}}, headers=ADMIN
    )
    await client.patch(
        f"/api/v1/contacts/{gone}",
        json={"attributes": {"city": "Galle", "vip": True}},
        headers=ADMIN,
    )
    note = await client.post(
        f"/api/v1/contacts/{gone}/notes", json={"content": "Prefers calls"}, headers=ADMIN
    )
    assert note.status == 201
    note_id = (await note.json())["id"]

    response = await client.post(
        f"/api/v1/contacts/{kept}/merge", json={"contact_id": gone}, headers=ADMIN
    )
    assert response.status == 200, await response.text()
    moved = await response.json()
    assert moved["conversations"] == [gone_conversation]
    assert moved["notes"] == [note_id]
    assert moved["attributes"] == ["vip"]
    assert moved["resolved_conversations"] == []
    contact = moved["contact"]
    assert contact["id"] == kept
    assert contact["attributes"] == {"city": "Kandy", "vip": True}  # the survivor's value wins
    assert len(contact["identities"]) == 2

    old = await client.get(f"/api/v1/contacts/{gone}", headers=ADMIN)
    assert old.status == 200
    assert (await old.json())["id"] == kept
    notes = await (await client.get(f"/api/v1/contacts/{gone}/notes", headers=ADMIN)).json()
    assert [n["id"] for n in notes["data"]] == [note_id]
    owners = await hub.pool.fetch(
        "SELECT DISTINCT contact_id FROM conversations WHERE id = ANY($1::text[])",
        [kept_conversation, gone_conversation],
    )
    assert [r["contact_id"] for r in owners] == [kept]
    listed = await (await client.get("/api/v1/contacts", headers=ADMIN)).json()
    assert [c["id"] for c in listed["data"]] == [kept]

    events = await contact_events(hub, kept, lambda e: e["type"] == "contact.merged")
    merged = [e for e in events if e["type"] == "contact.merged"]
    assert [e["payload"]["merged_contact_id"] for e in merged] == [gone]
    entry = await hub.pool.fetchrow(
        "SELECT object_id, details FROM audit_log WHERE action = 'contact.merged'"
    )
    assert entry is not None and entry["object_id"] == kept
    details = (
        entry["details"] if isinstance(entry["details"], dict) else orjson.loads(entry["details"])
    )
    assert details["conversations"] == [gone_conversation]
    assert details["identities"][0]["address"].startswith("Kamala P-")

    again = await client.post(
        f"/api/v1/contacts/{kept}/merge", json={"contact_id": gone}, headers=ADMIN
    )
    assert again.status == 409


async def test_two_open_conversations_in_one_inbox_keep_the_survivors_open(
    hub: Hub, client: Client
) -> None:
    shop = await inbox(hub)
    kept, kept_conversation = await person(hub, shop, "Nimal")
    gone, gone_conversation = await person(hub, shop, "Nimal S")
    response = await client.post(
        f"/api/v1/contacts/{kept}/merge", json={"contact_id": gone}, headers=ADMIN
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["resolved_conversations"] == [gone_conversation]
    states = dict(
        await hub.pool.fetch("SELECT id, status FROM conversations WHERE contact_id = $1", kept)
    )
    assert states == {kept_conversation: "open", gone_conversation: "resolved"}
    # the merged contact's address writes again: the survivor's open conversation takes it
    address = await hub.pool.fetchval(
        "SELECT address FROM contact_identities WHERE address LIKE 'Nimal S-%'"
    )
    async with hub.pool.acquire() as conn:
        context = await load_inbox(conn, hub.box, shop)
        assert context is not None
        async with conn.transaction():
            [result] = await ingest_batch(
                conn,
                [IngestRequest(context, InboundMessage("x1", Sender("api", address), "hi"), "c")],
            )
    assert (result.contact_id, result.conversation_id) == (kept, kept_conversation)


async def test_refused_merges_change_nothing(hub: Hub, client: Client) -> None:
    shop = await inbox(hub)
    kept, _ = await person(hub, shop, "Kamal")
    other_account = new_id()
    await hub.pool.execute(
        "INSERT INTO accounts (id, name) VALUES ($1, 'Elsewhere')", other_account
    )
    async with hub.pool.acquire() as conn:
        other_inbox = await create_inbox(
            conn, hub.box, account_id=other_account, channel="api", name="X"
        )
        foreign, _ = await _conversation(conn, other_account, other_inbox.id, "Xavier")
    before = await snapshot(hub)
    itself = await client.post(
        f"/api/v1/contacts/{kept}/merge", json={"contact_id": kept}, headers=ADMIN
    )
    assert itself.status == 422
    assert (await itself.json())["error"]["code"] == "same_contact"
    across = await client.post(
        f"/api/v1/contacts/{kept}/merge", json={"contact_id": foreign}, headers=ADMIN
    )
    assert across.status == 404
    assert await snapshot(hub) == before


async def test_agents_merge_only_contacts_in_their_inboxes(hub: Hub, client: Client) -> None:
    shop, bank = await inbox(hub, "Shop"), await inbox(hub, "Bank")
    await hub.pool.execute("UPDATE accounts SET contacts_by_inbox = true")
    mine, _ = await person(hub, shop, "Mine")
    theirs, _ = await person(hub, bank, "Theirs")
    agent = await agent_auth(hub, (shop,))
    before = await snapshot(hub)
    response = await client.post(
        f"/api/v1/contacts/{mine}/merge", json={"contact_id": theirs}, headers=agent
    )
    assert response.status == 404
    assert await snapshot(hub) == before


async def test_contacts_sharing_an_address_are_suggested_for_a_merge(
    hub: Hub, client: Client
) -> None:
    shop, bank = await inbox(hub, "Shop"), await inbox(hub, "Bank")
    by_mail = await client.post(
        "/api/v1/contacts",
        json={"identities": [{"channel": "email", "address": "bob@Example.com"}]},
        headers=ADMIN,
    )
    by_api = await client.post(
        "/api/v1/contacts",
        json={"identities": [{"channel": "api", "address": "Bob@example.com"}]},
        headers=ADMIN,
    )
    await client.post(
        "/api/v1/contacts",
        json={"identities": [{"channel": "api", "address": "someone@else.org"}]},
        headers=ADMIN,
    )
    a, b = (await by_mail.json())["id"], (await by_api.json())["id"]
    listed = await (await client.get("/api/v1/contact-merge-suggestions", headers=ADMIN)).json()
    assert [s["contact_ids"] for s in listed["data"]] == [sorted([a, b])]
    assert {i["channel"] for i in listed["data"][0]["shared"][0]} == {"email", "api"}

    # limited to an inbox, an agent is shown pairs whose contacts are both in sight
    await hub.pool.execute("UPDATE accounts SET contacts_by_inbox = true")
    for contact_id, inbox_id in ((a, shop), (b, bank)):
        await hub.pool.execute(
            """INSERT INTO conversations (id, account_id, inbox_id, contact_id)
               VALUES ($1, $2, $3, $4)""",
            new_id(),
            hub.account_id,
            inbox_id,
            contact_id,
        )
    agent = await agent_auth(hub, (shop,))
    seen = await (await client.get("/api/v1/contact-merge-suggestions", headers=agent)).json()
    assert seen["data"] == []
    both = await agent_auth(hub, (shop, bank))
    seen = await (await client.get("/api/v1/contact-merge-suggestions", headers=both)).json()
    assert len(seen["data"]) == 1


async def test_defined_attributes_are_checked_on_write_and_filterable(
    hub: Hub, client: Client
) -> None:
    for definition in (
        {"key": "seats", "label": "Seats", "type": "number"},
        {"key": "plan", "label": "Plan", "type": "list", "options": ["free", "pro"]},
        {"key": "renews", "label": "Renews", "type": "date"},
        {"key": "active", "label": "Active", "type": "checkbox"},
        {"key": "site", "label": "Site", "type": "link"},
    ):
        made = await client.post("/api/v1/contact-attributes", json=definition, headers=ADMIN)
        assert made.status == 201, await made.text()
    agent = await agent_auth(hub)
    denied = await client.post(
        "/api/v1/contact-attributes",
        json={"key": "x", "label": "X", "type": "text"},
        headers=agent,
    )
    assert denied.status == 403

    created = await client.post(
        "/api/v1/contacts",
        json={"name": "Big", "attributes": {"seats": 10, "plan": "pro", "active": True}},
        headers=ADMIN,
    )
    assert created.status == 201, await created.text()
    big = (await created.json())["id"]
    small = (
        await (
            await client.post(
                "/api/v1/contacts",
                json={"name": "Small", "attributes": {"seats": 2, "plan": "free"}},
                headers=ADMIN,
            )
        ).json()
    )["id"]

    for wrong, attribute in (
        ({"seats": "ten"}, "seats"),
        ({"plan": "gold"}, "plan"),
        ({"renews": "31/12/2026"}, "renews"),
        ({"active": "yes"}, "active"),
        ({"site": "javascript:alert(1)"}, "site"),
    ):
        response = await client.patch(
            f"/api/v1/contacts/{small}", json={"attributes": {"note": "x", **wrong}}, headers=ADMIN
        )
        assert response.status == 422, wrong
        error = (await response.json())["error"]
        assert error["code"] == "invalid_attribute"
        assert error["details"]["attribute"] == attribute
        assert attribute in error["message"]
    stored = await hub.pool.fetchval("SELECT attributes FROM contacts WHERE id = $1", small)
    assert stored == {"seats": 2, "plan": "free"}  # nothing of a refused write

    ok = await client.patch(
        f"/api/v1/contacts/{small}",
        json={"attributes": {"renews": "2026-12-31", "site": "https://small.example"}},
        headers=ADMIN,
    )
    assert ok.status == 200

    async def ids(query: str) -> list[str]:
        page = await (await client.get(f"/api/v1/contacts?{query}", headers=ADMIN)).json()
        return [c["id"] for c in page["data"]]

    assert await ids("attribute=plan&value=pro") == [big]
    assert await ids("attribute=seats&value=2") == [small]
    assert await ids("attribute=active&value=true") == [big]
    bad = await client.get("/api/v1/contacts?attribute=seats&value=many", headers=ADMIN)
    assert bad.status == 422
    unknown = await client.get("/api/v1/contacts?attribute=nope&value=1", headers=ADMIN)
    assert unknown.status == 422


async def test_companies_hold_contacts_and_show_their_conversations(
    hub: Hub, client: Client
) -> None:
    shop, bank = await inbox(hub, "Shop"), await inbox(hub, "Bank")
    in_shop, shop_conversation = await person(hub, shop, "Anne")
    in_bank, bank_conversation = await person(hub, bank, "Ben")
    made = await client.post(
        "/api/v1/companies", json={"name": "Acme", "domain": "ACME.example"}, headers=ADMIN
    )
    assert made.status == 201
    company = await made.json()
    assert company["domain"] == "acme.example"
    twin = await client.post(
        "/api/v1/companies", json={"name": "Acme 2", "domain": "acme.example"}, headers=ADMIN
    )
    assert twin.status == 409
    for contact_id in (in_shop, in_bank):
        joined = await client.patch(
            f"/api/v1/contacts/{contact_id}",
            json={"company_id": company["id"]},
            headers=ADMIN,
        )
        assert (await joined.json())["company_id"] == company["id"]
    nowhere = await client.patch(
        f"/api/v1/contacts/{in_shop}", json={"company_id": new_id()}, headers=ADMIN
    )
    assert nowhere.status == 422

    path = f"/api/v1/companies/{company['id']}"
    people = await (await client.get(f"{path}/contacts", headers=ADMIN)).json()
    assert {c["id"] for c in people["data"]} == {in_shop, in_bank}
    talks = await (await client.get(f"{path}/conversations", headers=ADMIN)).json()
    assert {c["id"] for c in talks["data"]} == {shop_conversation, bank_conversation}
    agent = await agent_auth(hub, (shop,))
    talks = await (await client.get(f"{path}/conversations", headers=agent)).json()
    assert [c["id"] for c in talks["data"]] == [shop_conversation]
    await hub.pool.execute("UPDATE accounts SET contacts_by_inbox = true")
    people = await (await client.get(f"{path}/contacts", headers=agent)).json()
    assert [c["id"] for c in people["data"]] == [in_shop]

    assert (await client.delete(path, headers=ADMIN)).status == 204
    left = await hub.pool.fetchval("SELECT count(*) FROM contacts WHERE company_id IS NOT NULL")
    assert left == 0


async def test_a_note_records_who_wrote_it_and_when(hub: Hub, client: Client) -> None:
    shop = await inbox(hub)
    contact_id, _ = await person(hub, shop, "Kumari")
    agent = await agent_auth(hub)
    user_id = await hub.pool.fetchval("SELECT id FROM users WHERE role = 'agent'")
    response = await client.post(
        f"/api/v1/contacts/{contact_id}/notes", json={"content": "Call after 5"}, headers=agent
    )
    assert response.status == 201
    note = await response.json()
    assert (note["author_type"], note["author_id"]) == ("user", user_id)
    assert note["created_at"]
    empty = await client.post(
        f"/api/v1/contacts/{contact_id}/notes", json={"content": ""}, headers=agent
    )
    assert empty.status == 422
    events = await contact_events(
        hub, contact_id, lambda e: "notes" in e["payload"].get("changed", [])
    )
    assert any("notes" in e["payload"].get("changed", []) for e in events)


async def test_the_export_streams_every_live_contact_and_defuses_formulas(
    hub: Hub, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv
    import io

    import crm.export

    monkeypatch.setattr(crm.export, "PAGE", 2)  # several pages from five contacts
    names = ['=HYPERLINK("http://x")', "+1 trick", "Plain", "@SUM(A1)", "Last"]
    made = []
    for name in names:
        response = await client.post("/api/v1/contacts", json={"name": name}, headers=ADMIN)
        made.append((await response.json())["id"])
    await client.post(
        f"/api/v1/contacts/{made[2]}/merge", json={"contact_id": made[4]}, headers=ADMIN
    )
    response = await client.get("/api/v1/contact-export?format=csv", headers=ADMIN)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0][:2] == ["id", "name"]
    assert [r[0] for r in rows[1:]] == made[:4]  # the merged one is not exported
    assert [r[1] for r in rows[1:]] == [
        '\'=HYPERLINK("http://x")',
        "'+1 trick",
        "Plain",
        "'@SUM(A1)",
    ]
    as_json = await (await client.get("/api/v1/contact-export?format=json", headers=ADMIN)).json()
    assert [c["name"] for c in as_json] == names[:4]  # JSON is data, not a spreadsheet
    agent = await agent_auth(hub)
    assert (await client.get("/api/v1/contact-export", headers=agent)).status == 403
    assert (
        await hub.pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'contacts.exported'")
        == 2
    )
