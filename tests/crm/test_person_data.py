"""Data protection for one person over REST: the zip of everything the hub holds about them."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from channels._base import InboundMessage, MessageEdit, Sender
from hub.actions.edits import apply_edits
from hub.actions.ingest import IngestRequest, ingest_batch
from hub.app import Hub
from hub.bus import BusMessage
from hub.config import Config
from hub.consumers.journal import Journal
from hub.ids import new_id
from hub.store.reads import load_inbox
from tests.api.test_contacts_api import agent_auth, contact_events
from tests.conftest import ADMIN_TOKEN
from tests.crm.test_crm_api import inbox, person, snapshot

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET = "my card number is 4111 1111"
FILE = b"%PDF-1.4 the payslip of Kamala" * 100


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(rate_limit_address=0.0, rate_limit_token=0.0)


async def history(hub: Hub, client: Client) -> dict[str, Any]:
    """A contact with an inbound message, an agent's reply with a file, a note, an attribute,
    a company and a contact merged into it."""
    shop = await inbox(hub, "Shop")
    contact_id, conversation_id = await person(hub, shop, "Kamala")
    other_id, other_conversation = await person(hub, shop, "Kamala P")
    address = await hub.pool.fetchval(
        "SELECT address FROM contact_identities WHERE contact_id = $1", contact_id
    )
    async with hub.pool.acquire() as conn:
        context = await load_inbox(conn, hub.box, shop)
        assert context is not None
        async with conn.transaction():
            await ingest_batch(
                conn,
                [IngestRequest(context, InboundMessage("p1", Sender("api", address), SECRET), "c")],
            )
    form = aiohttp.FormData()
    form.add_field("file", FILE, filename="pay slip.pdf", content_type="application/pdf")
    form.add_field("content", "here is the payslip")
    sent = await client.post(
        f"/api/v1/conversations/{conversation_id}/attachments", data=form, headers=ADMIN
    )
    assert sent.status == 201, await sent.text()
    company = await client.post(
        "/api/v1/companies", json={"name": "Colombo Tea", "domain": "tea.lk"}, headers=ADMIN
    )
    company_id = (await company.json())["id"]
    patched = await client.patch(
        f"/api/v1/contacts/{contact_id}",
        json={"attributes": {"city": "Colombo"}, "company_id": company_id},
        headers=ADMIN,
    )
    assert patched.status == 200
    noted = await client.post(
        f"/api/v1/contacts/{contact_id}/notes",
        json={"content": "Asked about refunds"},
        headers=ADMIN,
    )
    assert noted.status == 201
    merged = await client.post(
        f"/api/v1/contacts/{contact_id}/merge", json={"contact_id": other_id}, headers=ADMIN
    )
    assert merged.status == 200, await merged.text()
    return {
        "contact_id": contact_id,
        "other_id": other_id,
        "conversations": {conversation_id, other_conversation},
        "company_id": company_id,
        "address": address,
    }


async def test_export_holds_everything_about_the_person(hub: Hub, client: Client) -> None:
    world = await history(hub, client)
    response = await client.get(
        f"/api/v1/contacts/{world['other_id']}/data-export", headers=ADMIN
    )  # the merged id answers for the survivor
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/zip"
    assert "Content-Length" not in response.headers  # streamed
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    assert archive.testzip() is None
    names = set(archive.namelist())
    contact = orjson.loads(archive.read("contact.json"))
    assert contact["id"] == world["contact_id"]
    assert contact["attributes"] == {"city": "Colombo"}
    assert contact["company"]["name"] == "Colombo Tea"
    assert world["address"] in {i["address"] for i in contact["identities"]}
    assert [m["id"] for m in contact["merged_contacts"]] == [world["other_id"]]
    notes = orjson.loads(archive.read("notes.json"))
    assert [n["content"] for n in notes] == ["Asked about refunds"]
    conversations = orjson.loads(archive.read("conversations.json"))
    assert {c["id"] for c in conversations} == world["conversations"]
    messages = [orjson.loads(line) for line in archive.read("messages.jsonl").splitlines()]
    contents = {m["content"] for m in messages}
    assert SECRET in contents and "here is the payslip" in contents
    media = orjson.loads(archive.read("media.json"))
    assert len(media) == 1 and media[0]["filename"] == "pay slip.pdf"
    assert media[0]["path"] in names and media[0]["path"].endswith("-pay_slip.pdf")
    assert archive.read(media[0]["path"]) == FILE
    entry = await hub.pool.fetchrow(
        "SELECT object_id FROM audit_log WHERE action = 'contact.data_exported'"
    )
    assert entry is not None and entry["object_id"] == world["contact_id"]


async def test_export_of_unknown_or_other_account_contact_is_404(hub: Hub, client: Client) -> None:
    missing = await client.get("/api/v1/contacts/01NOSUCHCONTACT/data-export", headers=ADMIN)
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"


NOTE = "Asked about refunds"
CITY = "Galle-Fort-17"


async def _settled(hub: Hub, until: str, *args: Any) -> None:
    """Wait until ``until`` (a query answering true) holds: the consumers caught up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not await hub.pool.fetchval(until, *args):
        assert loop.time() < deadline, until
        await asyncio.sleep(0.05)


async def traces(hub: Hub, needles: list[str]) -> list[str]:
    """Every table and column of the database whose text holds one of ``needles`` (bytea
    columns as text and as hex), and every media file holding one."""
    found = []
    tables = await hub.pool.fetch(
        """SELECT table_name FROM information_schema.tables
            WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"""
    )
    patterns = [f"%{n}%" for n in needles] + [f"%{n.encode().hex()}%" for n in needles]
    for t in tables:
        hits = await hub.pool.fetchval(
            f'SELECT count(*) FROM "{t["table_name"]}" x WHERE x::text LIKE ANY($1::text[])',
            patterns,
        )
        if hits:
            found.append(t["table_name"])
    media = Path(hub.config.data_dir) / "media"
    for path in media.rglob("*") if media.exists() else []:
        if path.is_file() and any(n.encode() in path.read_bytes() for n in needles):
            found.append(str(path))
    return found


async def test_erasure_leaves_no_trace_of_the_content(hub: Hub, client: Client) -> None:
    hooked = await client.post(
        "/api/v1/webhooks",
        json={
            "name": "archive",
            "url": "https://93.184.215.14/hook",
            "event_types": ["message.received", "message.created", "contact.updated"],
        },
        headers=ADMIN,
    )
    assert hooked.status == 201, await hooked.text()
    world = await history(hub, client)
    contact_id = world["contact_id"]
    await client.patch(
        f"/api/v1/contacts/{contact_id}", json={"attributes": {"city": CITY}}, headers=ADMIN
    )
    # a deep link kept on the conversation, and a message the person edited afterwards
    said, edited, deep_link = "my old flat is 12 Lake Rd", "my flat is 9 Hill St", "ref-Kamala-77"
    async with hub.pool.acquire() as conn:
        shop = await conn.fetchval(
            "SELECT inbox_id FROM conversations WHERE contact_id = $1 LIMIT 1", contact_id
        )
        context = await load_inbox(conn, hub.box, shop)
        assert context is not None
        sender = Sender("api", world["address"])
        first = InboundMessage(
            "p2", sender, said, conversation_attributes={"start_payload": deep_link}
        )
        async with conn.transaction():
            await ingest_batch(conn, [IngestRequest(context, first, "c")])
        async with conn.transaction():
            (outcome,) = await apply_edits(
                conn, inbox=context, edits=[MessageEdit("p2", "p2#1", sender, edited)]
            )
        assert outcome.applied
    needles = [SECRET, "payslip of Kamala", "here is the payslip", "pay slip.pdf", NOTE, CITY]
    needles += [world["address"], said, edited, deep_link]
    for table in ("event_log", "realtime_events"):  # the edit's event, with the earlier text
        await _settled(
            hub,
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE event::text LIKE $1)",
            f"%{edited}%{said}%",
        )
    # every consumer that keeps a copy has it
    await _settled(
        hub, "SELECT count(*) = 3 FROM webhook_deliveries WHERE event_type LIKE 'message.%'"
    )
    await _settled(
        hub,
        "SELECT EXISTS (SELECT 1 FROM realtime_events WHERE event::text LIKE $1)",
        f"%{SECRET}%",
    )
    await _settled(
        hub, "SELECT EXISTS (SELECT 1 FROM event_log WHERE event::text LIKE $1)", f"%{SECRET}%"
    )
    await _settled(  # the archive's profile document (crm/archive), after the merge and city
        hub,
        """SELECT EXISTS (SELECT 1 FROM archived_profiles
                           WHERE contact_id = $1 AND document -> 'merged_contacts' ? $2
                             AND document -> 'attributes' ->> 'city' = $3)""",
        contact_id,
        world["other_id"],
        CITY,
    )
    before = await traces(hub, needles)
    assert {"messages", "event_log", "realtime_events", "webhook_deliveries", "media",
            "contact_notes", "contacts", "contact_identities",
            "archived_profiles"} <= set(before)  # fmt: skip
    assert any("/media/" in f for f in before)
    message_event = await hub.pool.fetchval(
        "SELECT event::text FROM event_log WHERE type = 'message.received' AND event::text LIKE $1",
        f"%{SECRET}%",
    )

    erased = await client.post(f"/api/v1/contacts/{contact_id}/erase", headers=ADMIN)
    assert erased.status == 200, await erased.text()
    counts = await erased.json()
    assert counts["merged_contacts"] == 1
    assert counts["conversations"] == 2
    assert counts["messages"] == 5 and counts["files"] == 1 and counts["notes"] == 1
    assert counts["identities"] == 2
    assert counts["event_copies"]["event_log"] > 0
    assert await traces(hub, needles) == []

    # the anonymised contact stays, with its conversations; the person is not re-matched
    contact = await (await client.get(f"/api/v1/contacts/{contact_id}", headers=ADMIN)).json()
    assert contact["name"] is None and contact["identities"] == [] and contact["attributes"] == {}
    assert (
        await hub.pool.fetchval(
            "SELECT count(*) FROM conversations WHERE contact_id = $1", contact_id
        )
        == 2
    )
    entry = await hub.pool.fetchrow(
        "SELECT actor_type, details FROM audit_log WHERE action = 'contact.erased'"
    )
    assert entry is not None
    details = entry["details"]
    details = details if isinstance(details, dict) else orjson.loads(details)
    assert details["messages"] == 5 and details["files"] == 1
    events = await contact_events(hub, contact_id, lambda e: e["type"] == "contact.erased")
    (told,) = [e for e in events if e["type"] == "contact.erased"]
    assert set(told["payload"]["conversation_ids"]) == world["conversations"]
    assert len(told["payload"]["message_ids"]) == 5

    # an event of the person's that was still on the bus is logged after the erasure: the
    # journal blanks it again when it sees contact.erased
    late_id = orjson.loads(message_event)["id"]
    await hub.pool.execute("DELETE FROM event_log WHERE id = $1", late_id)
    erased_event = await hub.pool.fetchval(
        "SELECT event::text FROM event_log WHERE type = 'contact.erased'"
    )
    await hub.pool.execute("DELETE FROM event_log WHERE type = 'contact.erased'")
    batch = [
        BusMessage("t", "k", raw.encode(), 0, n, {})
        for n, raw in enumerate([message_event, erased_event])
    ]
    await Journal(hub.pool).handle(batch)
    assert await hub.pool.fetchval("SELECT count(*) FROM event_log WHERE id = $1", late_id) == 1
    assert await traces(hub, needles) == []
    # and alone, after contact.erased was logged (the other topic's consumer ran first)
    await hub.pool.execute("DELETE FROM event_log WHERE id = $1", late_id)
    await Journal(hub.pool).handle(batch[:1])
    assert await hub.pool.fetchval("SELECT count(*) FROM event_log WHERE id = $1", late_id) == 1
    assert await traces(hub, needles) == []

    again = await client.post(f"/api/v1/contacts/{contact_id}/erase", headers=ADMIN)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "already_erased"
    merged = await client.post(f"/api/v1/contacts/{world['other_id']}/erase", headers=ADMIN)
    assert merged.status == 409
    # nobody else is merged into the erased person, nor they into anyone
    shop = await inbox(hub, "Later")
    newcomer, _ = await person(hub, shop, "Someone")
    for survivor, gone in ((contact_id, newcomer), (newcomer, contact_id)):
        refused = await client.post(
            f"/api/v1/contacts/{survivor}/merge", json={"contact_id": gone}, headers=ADMIN
        )
        assert refused.status == 409, await refused.text()
        assert "erased" in (await refused.json())["error"]["message"]


async def test_erasure_refusals_change_nothing(hub: Hub, client: Client) -> None:
    shop = await inbox(hub, "Shop")
    contact_id, _ = await person(hub, shop, "Ruwan")
    other_account = new_id()
    await hub.pool.execute(
        "INSERT INTO accounts (id, name) VALUES ($1, 'Elsewhere')", other_account
    )
    stranger = new_id()
    await hub.pool.execute(
        "INSERT INTO contacts (id, account_id, name) VALUES ($1, $2, 'Stranger')",
        stranger,
        other_account,
    )
    before = await snapshot(hub)
    for target in (stranger, "01NOSUCHCONTACT", "bad id!"):
        response = await client.post(f"/api/v1/contacts/{target}/erase", headers=ADMIN)
        assert response.status == 404, (target, response.status)
    member = await agent_auth(hub)
    refused = await client.post(f"/api/v1/contacts/{contact_id}/erase", headers=member)
    assert refused.status == 403
    assert await snapshot(hub) == before
    assert await hub.pool.fetchval("SELECT erased_at FROM contacts WHERE id = $1", stranger) is None
