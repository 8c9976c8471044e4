"""Segments over REST: saved filters over attributes, identities, labels, company and activity
("Colombo customers who wrote on WhatsApp in the last 30 days"), counted and listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from crm.segments import ulid_floor
from hub.app import Hub
from hub.config import Config
from tests.conftest import ADMIN_TOKEN
from tests.crm.test_crm_api import inbox, person

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(rate_limit_address=0.0, rate_limit_token=0.0)


async def test_segments_filter_count_and_list(hub: Hub, client: Client) -> None:
    shop = await inbox(hub, "Shop")
    # the "WhatsApp" inbox: its channel column names the channel the activity filter matches
    chat = await inbox(hub, "Chat")
    await hub.pool.execute("UPDATE inboxes SET channel = 'whatsapp_cloud' WHERE id = $1", chat)
    people = {}
    for name in ("Amal", "Bimal", "Chamal", "Dinal"):
        people[name] = await person(hub, shop, name)
    defined = await client.post(
        "/api/v1/contact-attributes",
        json={"key": "vip", "label": "VIP", "type": "checkbox"},
        headers=ADMIN,
    )
    assert defined.status == 201
    for name, city in (("Amal", "Colombo"), ("Bimal", "Colombo"), ("Chamal", "Kandy")):
        await client.patch(
            f"/api/v1/contacts/{people[name][0]}",
            json={"attributes": {"city": city, "vip": name == "Amal"}},
            headers=ADMIN,
        )
    # Amal wrote on WhatsApp 2 days ago, Bimal 40 days ago; Chamal's conversation is labelled
    for name, days in (("Amal", 2), ("Bimal", 40)):
        contact_id = people[name][0]
        conversation = f"conv-{name}"
        await hub.pool.execute(
            """INSERT INTO conversations (id, account_id, inbox_id, contact_id, status)
               VALUES ($1, $2, $3, $4, 'resolved')""",
            conversation,
            hub.account_id,
            chat,
            contact_id,
        )
        moment = datetime.now(UTC) - timedelta(days=days)
        await hub.pool.execute(
            """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction,
                                     sender_type, content, status)
               VALUES ($1, $2, $3, $4, 'inbound', 'contact', 'hi', 'received')""",
            ulid_floor(moment)[:10] + "0000000000000001",
            hub.account_id,
            conversation,
            chat,
        )
    await hub.pool.execute(
        "UPDATE conversations SET labels = '{billing}' WHERE id = $1", people["Chamal"][1]
    )

    async def members(filter_: dict[str, Any]) -> tuple[int, list[str]]:
        made = await client.post(
            "/api/v1/segments", json={"name": "s", "filter": filter_}, headers=ADMIN
        )
        assert made.status == 201, await made.text()
        segment_id = (await made.json())["id"]
        counted = await client.get(f"/api/v1/segments/{segment_id}/count", headers=ADMIN)
        listed = await client.get(f"/api/v1/segments/{segment_id}/contacts", headers=ADMIN)
        ids = [c["id"] for c in (await listed.json())["data"]]
        by_id = {v[0]: k for k, v in people.items()}
        return (await counted.json())["count"], sorted(by_id[i] for i in ids)

    colombo_whatsapp = {
        "attributes": {"city": "Colombo"},
        "wrote_on": "whatsapp_cloud",
        "wrote_within_days": 30,
    }
    assert await members(colombo_whatsapp) == (1, ["Amal"])
    assert await members({**colombo_whatsapp, "wrote_within_days": 60}) == (2, ["Amal", "Bimal"])
    assert await members({"attributes": {"city": "Colombo"}}) == (2, ["Amal", "Bimal"])
    assert await members({"attributes": {"vip": True}}) == (1, ["Amal"])
    assert await members({"labels": ["billing"]}) == (1, ["Chamal"])
    assert await members({"channels": ["api"]}) == (4, ["Amal", "Bimal", "Chamal", "Dinal"])
    assert await members({"channels": ["email"]}) == (0, [])
    assert await members({"wrote_within_days": 1}) == (4, ["Amal", "Bimal", "Chamal", "Dinal"])
    assert await members({}) == (4, ["Amal", "Bimal", "Chamal", "Dinal"])

    # paging: newest first, a cursor to the rest
    made = await client.post("/api/v1/segments", json={"name": "all", "filter": {}}, headers=ADMIN)
    segment_id = (await made.json())["id"]
    first = await (
        await client.get(f"/api/v1/segments/{segment_id}/contacts?limit=3", headers=ADMIN)
    ).json()
    rest = await (
        await client.get(
            f"/api/v1/segments/{segment_id}/contacts?limit=3&cursor={first['next_cursor']}",
            headers=ADMIN,
        )
    ).json()
    assert len(first["data"]) == 3 and len(rest["data"]) == 1 and rest["next_cursor"] is None
    assert first["data"][0]["id"] > first["data"][-1]["id"] > rest["data"][0]["id"]


async def test_bad_segments_are_refused(hub: Hub, client: Client) -> None:
    await client.post(
        "/api/v1/contact-attributes",
        json={"key": "vip", "label": "VIP", "type": "checkbox"},
        headers=ADMIN,
    )
    for filter_, code in (
        ({"attributes": {"vip": "yes"}}, "invalid_attribute"),
        ({"wrote_on": "whatsapp_cloud"}, "invalid_filter"),
        ({"wrote_within_days": 0}, None),
        ({"unknown": 1}, None),
        ({"attributes": {"Bad Key": 1}}, None),
    ):
        refused = await client.post(
            "/api/v1/segments", json={"name": "s", "filter": filter_}, headers=ADMIN
        )
        assert refused.status == 422, filter_
        if code:
            assert (await refused.json())["error"]["code"] == code
    assert await hub.pool.fetchval("SELECT count(*) FROM segments") == 0
    missing = await client.get("/api/v1/segments/01NOSUCHSEGMENT/count", headers=ADMIN)
    assert missing.status == 404


async def test_a_segment_exports_as_csv_and_json_streamed_and_defused(
    hub: Hub, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the segment's contacts, oldest first, over several pages; formula cells defused in
    CSV, kept as they are in JSON; administrators only, audited; an unknown segment is 404."""
    import csv
    import io

    import crm.segments
    import gateway.routes.segments
    from tests.api.test_contacts_api import agent_auth

    names = ['=cmd|" /C calc"!A0', "+1 trick", "Plain", "@SUM(A1)", "Other city"]
    made = []
    for name in names:
        response = await client.post("/api/v1/contacts", json={"name": name}, headers=ADMIN)
        made.append((await response.json())["id"])
    for contact_id, name in zip(made, names, strict=True):
        city = "Kandy" if name == "Other city" else "Colombo"
        patched = await client.patch(
            f"/api/v1/contacts/{contact_id}", json={"attributes": {"city": city}}, headers=ADMIN
        )
        assert patched.status == 200
    saved = await client.post(
        "/api/v1/segments",
        json={"name": "Colombo", "filter": {"attributes": {"city": "Colombo"}}},
        headers=ADMIN,
    )
    segment_id = (await saved.json())["id"]
    pages: list[int] = []
    real = crm.segments.member_pages

    async def small_pages(pool: Any, account: str, f: Any, scope: Any) -> Any:  # several pages
        async for page in real(pool, account, f, scope, page=3):
            pages.append(len(page))
            yield page

    monkeypatch.setattr(gateway.routes.segments, "member_pages", small_pages)
    response = await client.get(f"/api/v1/segments/{segment_id}/export?format=csv", headers=ADMIN)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert pages == [3, 1]
    as_json = await (
        await client.get(f"/api/v1/segments/{segment_id}/export?format=json", headers=ADMIN)
    ).json()
    assert rows[0][:2] == ["id", "name"]
    assert [r[0] for r in rows[1:]] == made[:4]
    assert [r[1] for r in rows[1:]] == ['\'=cmd|" /C calc"!A0', "'+1 trick", "Plain", "'@SUM(A1)"]
    assert [c["name"] for c in as_json] == names[:4]
    assert [c["attributes"]["city"] for c in as_json] == ["Colombo"] * 4
    bad = await client.get(f"/api/v1/segments/{segment_id}/export?format=xlsx", headers=ADMIN)
    assert bad.status in (400, 422)
    missing = await client.get("/api/v1/segments/01NOSUCHSEGMENT/export", headers=ADMIN)
    assert missing.status == 404
    agent = await agent_auth(hub)
    assert (await client.get(f"/api/v1/segments/{segment_id}/export", headers=agent)).status == 403
    audited = await hub.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'segment.exported' AND object_id = $1",
        segment_id,
    )
    assert audited == 2
