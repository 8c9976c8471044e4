"""Conversations over REST: filters, sorts and cursors, reading one, changing one (and the event it
announces), attachments and their download, and who may see what."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from channels._base import InboundMessage, Sender
from hub.actions.ingest import IngestRequest
from hub.actions.setup import create_inbox, hash_token
from hub.app import Hub
from hub.config import Config
from hub.ids import new_id
from hub.store.reads import inbox_counters, load_inbox
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
T0 = datetime(2030, 1, 1, tzinfo=UTC)
RANK = {"urgent": 4, "high": 3, "medium": 2, "low": 1, None: 0}


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    """No rate limits: the listings here page through rows one request at a time."""
    return hub_config.replace(rate_limit_address=0.0, rate_limit_token=0.0)


async def make_inbox(hub: Hub, name: str = "Shop") -> str:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name=name
        )
    return made.id


async def make_user(
    hub: Hub, role: str = "agent", inboxes: tuple[str, ...] = (), disabled: bool = False
) -> tuple[str, dict[str, str]]:
    """A user, its inbox memberships and a personal API token: (user id, auth headers)."""
    user_id, token = new_id(), f"tok-{new_id()}"
    async with hub.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO users (id, account_id, email, role, disabled_at)
               VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)""",
            user_id,
            hub.account_id,
            f"{user_id}@example.com",
            role,
            disabled,
        )
        for inbox_id in inboxes:
            await conn.execute(
                "INSERT INTO inbox_members (inbox_id, user_id) VALUES ($1, $2)", inbox_id, user_id
            )
        await conn.execute(
            """INSERT INTO api_tokens (id, account_id, name, role, token_hash, user_id)
               VALUES ($1, $2, 'test', $3, $4, $5)""",
            new_id(),
            hub.account_id,
            role,
            hash_token(token),
            user_id,
        )
    return user_id, {"Authorization": f"Bearer {token}"}


async def make_label(hub: Hub, name: str) -> None:
    await hub.pool.execute(
        "INSERT INTO labels (id, account_id, name) VALUES ($1, $2, $3)",
        new_id(),
        hub.account_id,
        name,
    )


async def make_team(hub: Hub, name: str) -> str:
    team_id = new_id()
    await hub.pool.execute(
        "INSERT INTO teams (id, account_id, name) VALUES ($1, $2, $3)",
        team_id,
        hub.account_id,
        name,
    )
    return team_id


@dataclasses.dataclass
class Seeded:
    id: str
    inbox_id: str
    name: str
    status: str = "open"
    assignee_id: str | None = None
    team_id: str | None = None
    labels: tuple[str, ...] = ()
    priority: str | None = None
    activity: datetime = T0
    created: datetime = T0


async def seed(hub: Hub, inbox_id: str, name: str = "Someone", **fields: Any) -> Seeded:
    """A conversation (with a contact of its own) exactly as described."""
    row = Seeded(new_id(), inbox_id, name, **fields)
    contact_id = new_id()
    async with hub.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO contacts (id, account_id, name) VALUES ($1, $2, $3)",
            contact_id,
            hub.account_id,
            name,
        )
        await conn.execute(
            """INSERT INTO conversations (id, account_id, inbox_id, contact_id, status,
                   assignee_id, team_id, labels, priority, last_activity_at, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            row.id,
            hub.account_id,
            inbox_id,
            contact_id,
            row.status,
            row.assignee_id,
            row.team_id,
            list(row.labels),
            row.priority,
            row.activity,
            row.created,
        )
    return row


async def fetch_all(
    client: Client, params: dict[str, str], headers: dict[str, str] = ADMIN, limit: int = 3
) -> list[str]:
    """Every id a listing serves, following cursors; fails on a repeated id."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/conversations", params=query, headers=headers)
        assert response.status == 200, await response.text()
        page = await response.json()
        assert len(page["data"]) <= limit
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a row was served twice"
    return seen


async def events_of(hub: Hub, conversation_id: str, until: Callable[[Any], bool]) -> list[Any]:
    """The journal's events of a conversation, once an event matching ``until`` has been logged:
    every earlier event of the conversation is logged by then too (the bus keeps their order)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        rows = await hub.pool.fetch(
            "SELECT event FROM event_log WHERE conversation_id = $1 ORDER BY id", conversation_id
        )
        events = [orjson.loads(r["event"]) for r in rows]
        if any(until(e) for e in events) or loop.time() > deadline:
            return events
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# listing


async def test_each_filter_narrows_and_filters_combine(client: Client, hub: Hub) -> None:
    shop, support = await make_inbox(hub, "Shop"), await make_inbox(hub, "Support")
    me, my_auth = await make_user(hub, "administrator")
    other, _ = await make_user(hub, "agent", (shop,))
    team = await make_team(hub, "Billing")
    rows = [
        await seed(hub, shop, "Alice", assignee_id=me, labels=("vip",), priority="high"),
        await seed(hub, shop, "alfred", status="pending", team_id=team, labels=("vip", "b2b")),
        await seed(hub, shop, "Bob", status="resolved", assignee_id=other, priority="high"),
        await seed(hub, support, "Élodie", assignee_id=me, team_id=team, priority="low"),
        await seed(hub, support, "Carl", status="snoozed", labels=("b2b",)),
        await seed(hub, support, "Alina", assignee_id=other, labels=("vip",), priority="urgent"),
    ]

    async def check(params: dict[str, str], expect: list[Seeded], auth: dict[str, str]) -> None:
        got = await fetch_all(client, params, auth)
        assert sorted(got) == sorted(r.id for r in expect), params

    cases: list[tuple[dict[str, str], Any]] = [
        ({}, lambda r: True),
        ({"status": "open"}, lambda r: r.status == "open"),
        ({"inbox_id": support}, lambda r: r.inbox_id == support),
        ({"assignee_id": other}, lambda r: r.assignee_id == other),
        ({"team_id": team}, lambda r: r.team_id == team),
        ({"label": "vip"}, lambda r: "vip" in r.labels),
        ({"priority": "high"}, lambda r: r.priority == "high"),
        ({"unassigned": "true"}, lambda r: r.assignee_id is None),
        ({"unassigned": "false"}, lambda r: True),
        ({"mine": "true"}, lambda r: r.assignee_id == me),
        ({"q": "al"}, lambda r: r.name.lower().startswith("al")),
        ({"q": "ÉLO"}, lambda r: r.name == "Élodie"),
        ({"q": "zz"}, lambda r: False),
        ({"status": "open", "inbox_id": shop}, lambda r: r.status == "open" and r.inbox_id == shop),
        (
            {"label": "vip", "priority": "urgent"},
            lambda r: "vip" in r.labels and r.priority == "urgent",
        ),
        (
            {"label": "b2b", "unassigned": "true"},
            lambda r: "b2b" in r.labels and r.assignee_id is None,
        ),
        ({"mine": "true", "team_id": team}, lambda r: r.assignee_id == me and r.team_id == team),
        (
            {"q": "al", "label": "vip", "inbox_id": shop},
            lambda r: r.name.lower().startswith("al") and "vip" in r.labels and r.inbox_id == shop,
        ),
        ({"status": "resolved", "mine": "true"}, lambda r: False),
        ({"status": "open", "inbox_id": support, "mine": "true"}, lambda r: r.name == "Élodie"),
    ]
    for params, keep in cases:
        for sort in ("last_activity", "created", "priority"):
            await check({**params, "sort": sort}, [r for r in rows if keep(r)], my_auth)


async def test_pagination_serves_every_row_once_in_each_sort(client: Client, hub: Hub) -> None:
    inbox = await make_inbox(hub)
    priorities = [None, "low", "medium", "high", "urgent"]
    rows = [
        await seed(
            hub,
            inbox,
            f"c{i}",
            status="resolved" if i % 4 == 0 else "open",
            priority=priorities[i % 5],
            # ties on purpose: the id must break them, or a page boundary would skip a row
            activity=T0 + timedelta(seconds=i // 3),
            created=T0 - timedelta(seconds=i % 4),
        )
        for i in range(23)
    ]
    orders = {
        "last_activity": lambda r: (r.activity, r.id),
        "created": lambda r: (r.created, r.id),
        "priority": lambda r: (RANK[r.priority], r.activity, r.id),
    }
    for sort, key in orders.items():
        expected = [r.id for r in sorted(rows, key=key, reverse=True)]
        for limit in (1, 4, 7, 200):
            assert await fetch_all(client, {"sort": sort}, limit=limit) == expected, (sort, limit)
        open_rows = [r.id for r in sorted(rows, key=key, reverse=True) if r.status == "open"]
        assert await fetch_all(client, {"sort": sort, "status": "open"}, limit=4) == open_rows
    assert await fetch_all(client, {}) == await fetch_all(client, {"sort": "last_activity"})


async def test_cursors_and_parameters_are_checked(client: Client, hub: Hub) -> None:
    inbox = await make_inbox(hub)
    for i in range(3):
        await seed(hub, inbox, f"c{i}", activity=T0 + timedelta(seconds=i))
    page = await (
        await client.get("/api/v1/conversations", params={"limit": "1"}, headers=ADMIN)
    ).json()
    cursor = page["next_cursor"]
    assert cursor
    other_sort = await client.get(
        "/api/v1/conversations", params={"cursor": cursor, "sort": "priority"}, headers=ADMIN
    )
    assert other_sort.status == 400
    assert (await other_sort.json())["error"]["code"] == "invalid_cursor"
    for bad in (
        {"cursor": "bm90IGpzb24"},
        {"cursor": "WyJsYXN0X2FjdGl2aXR5IiwxLDJd"},  # ["last_activity",1,2]
        {"sort": "name"},
        {"status": "closed"},
        {"limit": "0"},
        {"label": "a\x00b"},
        {"q": ""},
        {"inbox_id": "../x"},
        {"mine": "perhaps"},
        {"colour": "red"},
    ):
        response = await client.get("/api/v1/conversations", params=bad, headers=ADMIN)
        assert response.status == 400, bad


async def test_list_keeps_inbox_counters_and_unread_count(client: Client, hub: Hub) -> None:
    shop, support = await make_inbox(hub, "Shop"), await make_inbox(hub, "Support")
    agent, auth = await make_user(hub, "agent", (shop,))
    await seed(hub, shop, "A", assignee_id=agent)
    await seed(hub, shop, "B")
    await seed(hub, support, "C")
    page = await (await client.get("/api/v1/conversations", headers=auth)).json()
    assert [c["inbox_id"] for c in page["data"]] == [shop, shop]
    assert all(c["unread_count"] == 0 for c in page["data"])
    assert [i["inbox_id"] for i in page["inboxes"]] == [shop]
    counters = page["inboxes"][0]
    assert (counters["open"], counters["unassigned"], counters["assigned"]) == (2, 1, {agent: 1})


# ---------------------------------------------------------------------------------------------
# one conversation, and changing it


async def test_get_one_conversation(client: Client, hub: Hub) -> None:
    inbox = await make_inbox(hub)
    row = await seed(hub, inbox, "Alice", labels=("vip",), priority="low")
    response = await client.get(f"/api/v1/conversations/{row.id}", headers=ADMIN)
    assert response.status == 200
    got = await response.json()
    assert (got["id"], got["contact_name"], got["labels"], got["priority"]) == (
        row.id,
        "Alice",
        ["vip"],
        "low",
    )
    for missing in (new_id(), "%00", "a%2Fb", "x" * 65):
        response = await client.get(f"/api/v1/conversations/{missing}", headers=ADMIN)
        assert response.status == 404, missing


async def patch(
    client: Client, conversation_id: str, body: dict[str, Any], auth: dict[str, str] = ADMIN
) -> aiohttp.ClientResponse:
    return await client.patch(f"/api/v1/conversations/{conversation_id}", json=body, headers=auth)


async def test_update_announces_one_event_with_the_previous_values(
    client: Client, hub: Hub
) -> None:
    inbox = await make_inbox(hub)
    agent, _ = await make_user(hub, "agent", (inbox,))
    team = await make_team(hub, "Billing")
    await make_label(hub, "vip")
    await make_label(hub, "b2b")
    row = await seed(hub, inbox, "Alice", labels=("b2b",))

    response = await patch(
        client,
        row.id,
        {"assignee_id": agent, "team_id": team, "labels": ["vip", "b2b", "vip"], "priority": None},
    )
    assert response.status == 200, await response.text()
    got = await response.json()
    assert (got["assignee_id"], got["team_id"], got["labels"]) == (agent, team, ["b2b", "vip"])

    # nothing changes: labels are a set, priority was already none; then one real change
    same = await patch(
        client, row.id, {"labels": ["vip", "b2b"], "priority": None, "status": "open"}
    )
    assert same.status == 200
    assert (await patch(client, row.id, {"status": "resolved"})).status == 200

    events = await events_of(
        hub, row.id, lambda e: e["payload"].get("state", {}).get("status") == "resolved"
    )
    updates = [e for e in events if e["type"] == "conversation.updated"]
    assert len(updates) == 2, "the no-op update announced something"
    first, second = (e["payload"] for e in updates)
    assert first["previous"] == {"assignee_id": None, "team_id": None, "labels": ["b2b"]}
    assert first["state"]["assignee_id"] == agent
    assert first["state"]["labels"] == ["b2b", "vip"]
    assert first["inbox_id"] == inbox
    assert second["previous"] == {"status": "open"}
    assert second["state"]["status"] == "resolved"
    assert updates[0]["actor"] == {"kind": "agent", "id": "tests-admin"}


async def test_refused_updates_change_nothing(client: Client, hub: Hub) -> None:
    shop, support = await make_inbox(hub, "Shop"), await make_inbox(hub, "Support")
    outsider, _ = await make_user(hub, "agent", (support,))
    gone, _ = await make_user(hub, "agent", (shop,), disabled=True)
    admin_user, _ = await make_user(hub, "administrator")
    await make_label(hub, "vip")
    row = await seed(hub, shop, "Alice")
    before = await hub.pool.fetchrow("SELECT * FROM conversations WHERE id = $1", row.id)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"assignee_id": new_id()}, 422, "invalid_assignee"),
        ({"assignee_id": outsider}, 422, "invalid_assignee"),
        ({"assignee_id": gone}, 422, "invalid_assignee"),
        ({"team_id": new_id()}, 422, "invalid_team"),
        ({"labels": ["vip", "nope"]}, 422, "unknown_labels"),
        ({"status": "snoozed"}, 422, "invalid_snooze"),
        ({"status": "snoozed", "snoozed_until": past}, 422, "invalid_snooze"),
        ({"snoozed_until": (T0 + timedelta(days=1)).isoformat()}, 422, "invalid_snooze"),
        ({"assignee_id": admin_user, "labels": ["nope"]}, 422, "unknown_labels"),
        ({"status": "closed"}, 422, "invalid_body"),
        ({"snoozed_until": "2030-01-01T00:00:00"}, 422, "invalid_body"),  # no time zone
        ({"colour": "red"}, 422, "invalid_body"),
    ]
    for body, status, code in cases:
        response = await patch(client, row.id, body)
        assert response.status == status, body
        error = (await response.json())["error"]
        assert error["code"] == code, body
    unknown = await patch(client, row.id, {"labels": ["vip", "nope"]})
    assert (await unknown.json())["error"]["details"] == {"labels": ["nope"]}
    after = await hub.pool.fetchrow("SELECT * FROM conversations WHERE id = $1", row.id)
    assert after is not None and before is not None
    assert dict(after) == dict(before)
    # an administrator may be assigned anywhere; the rules also let valid values through
    assert (await patch(client, row.id, {"assignee_id": admin_user})).status == 200


async def test_snooze_and_wake(client: Client, hub: Hub) -> None:
    inbox = await make_inbox(hub)
    row = await seed(hub, inbox, "Alice")
    until = datetime.now(UTC) + timedelta(hours=2)
    snoozed = await patch(client, row.id, {"status": "snoozed", "snoozed_until": until.isoformat()})
    assert snoozed.status == 200
    got = await snoozed.json()
    assert got["status"] == "snoozed"
    assert datetime.fromisoformat(got["snoozed_until"]) == until
    reopened = await (await patch(client, row.id, {"status": "open"})).json()
    assert (reopened["status"], reopened["snoozed_until"]) == ("open", None)


async def test_reopening_beside_another_open_conversation_is_a_conflict(
    client: Client, hub: Hub
) -> None:
    inbox = await make_inbox(hub)
    old = await seed(hub, inbox, "Alice", status="resolved")
    contact_id = await hub.pool.fetchval(
        "SELECT contact_id FROM conversations WHERE id = $1", old.id
    )
    await hub.pool.execute(
        """INSERT INTO conversations (id, account_id, inbox_id, contact_id)
           VALUES ($1, $2, $3, $4)""",
        new_id(),
        hub.account_id,
        inbox,
        contact_id,
    )
    response = await patch(client, old.id, {"status": "open"})
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "conflict"


async def test_agents_see_only_their_inboxes(client: Client, hub: Hub) -> None:
    shop, support = await make_inbox(hub, "Shop"), await make_inbox(hub, "Support")
    _, auth = await make_user(hub, "agent", (shop,))
    mine = await seed(hub, shop, "Alice")
    theirs = await seed(hub, support, "Bob")
    assert await fetch_all(client, {}, auth) == [mine.id]
    assert await fetch_all(client, {"inbox_id": support}, auth) == []

    assert (await client.get(f"/api/v1/conversations/{mine.id}", headers=auth)).status == 200
    base = f"/api/v1/conversations/{theirs.id}"
    assert (await client.get(base, headers=auth)).status == 404
    assert (await patch(client, theirs.id, {"status": "resolved"}, auth)).status == 404
    assert (await client.get(f"{base}/messages", headers=auth)).status == 404
    form = aiohttp.FormData()
    form.add_field("file", b"data", filename="a.txt", content_type="text/plain")
    assert (await client.post(f"{base}/attachments", data=form, headers=auth)).status == 404

    # a file attached in the other inbox cannot be fetched either
    form = aiohttp.FormData()
    form.add_field("file", b"secret", filename="a.txt", content_type="text/plain")
    uploaded = await client.post(f"{base}/attachments", data=form, headers=ADMIN)
    assert uploaded.status == 201
    url = (await uploaded.json())["attachments"][0]["url"]
    assert (await client.get(url, headers=ADMIN)).status == 200
    assert (await client.get(url, headers=auth)).status == 404
    status = await hub.pool.fetchval("SELECT status FROM conversations WHERE id = $1", theirs.id)
    assert status == "open"


# ---------------------------------------------------------------------------------------------
# attachments


async def test_attachment_is_stored_and_downloadable(
    client: Client, hub: Hub, tmp_path: Path
) -> None:
    inbox = await make_inbox(hub)
    _, auth = await make_user(hub, "agent", (inbox,))
    row = await seed(hub, inbox, "Alice")
    data = bytes(range(256)) * 40
    form = aiohttp.FormData()
    form.add_field("content", "the invoice")
    form.add_field("private", "true")
    form.add_field("file", data, filename="../../etc/réçu <1>.pdf", content_type="application/pdf")
    response = await client.post(
        f"/api/v1/conversations/{row.id}/attachments", data=form, headers=auth
    )
    assert response.status == 201, await response.text()
    sent = await response.json()
    assert sent["private"] is True
    [attachment] = sent["attachments"]
    assert attachment["filename"] == "réçu <1>.pdf"
    assert (attachment["size"], attachment["content_type"]) == (len(data), "application/pdf")
    assert attachment["url"] == f"/api/v1/media/{attachment['key']}"

    stored = list((hub.config.data_dir / "media").rglob("*"))
    files = [p for p in stored if p.is_file()]
    assert [p.name for p in files] == [attachment["key"]], "the key alone names the file"
    assert files[0].read_bytes() == data

    page = await (await client.get(f"/api/v1/conversations/{row.id}/messages", headers=auth)).json()
    [message] = page["data"]
    assert message["content"] == "the invoice"
    assert message["attachments"] == [attachment]

    download = await client.get(attachment["url"], headers=auth)
    assert download.status == 200
    assert await download.read() == data
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''r%C3%A9%C3%A7u%20%3C1%3E.pdf" in disposition

    events = await events_of(hub, row.id, lambda e: e["type"] == "message.created")
    [created] = [e for e in events if e["type"] == "message.created"]
    assert created["payload"]["attachments"] == [
        {
            "url": attachment["url"],
            "content_type": "application/pdf",
            "filename": "réçu <1>.pdf",
            "size": len(data),
            "unavailable": None,
        }
    ]
    assert (await client.get(f"/api/v1/media/{new_id()}", headers=auth)).status == 404
    assert (await client.get("/api/v1/media/..%2F..%2Fsecret.key", headers=auth)).status == 404


async def test_attachment_refusals_keep_nothing(client: Client, hub: Hub) -> None:
    inbox = await make_inbox(hub)
    row = await seed(hub, inbox, "Alice")
    url = f"/api/v1/conversations/{row.id}/attachments"
    limit = hub.config.max_body_bytes

    too_large = aiohttp.FormData()
    too_large.add_field("file", b"x" * (limit + 1), filename="big.bin")
    response = await client.post(url, data=too_large, headers=ADMIN)
    assert response.status == 413

    async def chunked() -> Any:  # no Content-Length: the store counts
        for _ in range(limit // 1024 + 2):
            yield b"y" * 1024

    writer = aiohttp.MultipartWriter("form-data")
    part = writer.append(chunked())
    part.set_content_disposition("form-data", name="file", filename="big.bin")
    response = await client.post(url, data=writer, headers=ADMIN)
    assert response.status == 413

    no_file = aiohttp.FormData(default_to_multipart=True)
    no_file.add_field("content", "hello")
    no_file.add_field("private", "false")
    response = await client.post(url, data=no_file, headers=ADMIN)
    assert response.status == 422

    bad_private = aiohttp.FormData()
    bad_private.add_field("file", b"data", filename="a.txt")
    bad_private.add_field("private", "maybe")
    assert (await client.post(url, data=bad_private, headers=ADMIN)).status == 422

    response = await client.post(url, json={"file": "data"}, headers=ADMIN)
    assert response.status == 415
    garbage = await client.post(
        url,
        data=b"--x\r\nnonsense",
        headers={**ADMIN, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert garbage.status in (400, 422)

    media = hub.config.data_dir / "media"
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await hub.pool.fetchval("SELECT count(*) FROM media") == 0


async def test_counters_follow_every_change(client: Client, hub: Hub) -> None:
    """The trigger-kept counters equal a count over the conversations after each kind of write:
    ingest (new, reopened), assign, snooze, resolve, and raw SQL updates and deletes."""
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name="Shop"
        )
        inbox = await load_inbox(conn, hub.box, made.id)
    assert inbox is not None
    agent, _ = await make_user(hub, "agent", (made.id,))

    async def send(message_id: str, contact: str) -> None:
        message = InboundMessage(message_id, Sender("api", contact, contact), "hi")
        await hub.ingest.submit(IngestRequest(inbox, message))

    async def check() -> None:
        recount = await hub.pool.fetch(
            """SELECT status, assignee_id, count(*) AS n FROM conversations
                WHERE inbox_id = $1 AND status <> 'resolved' GROUP BY 1, 2""",
            made.id,
        )
        expected: dict[str, Any] = {"open": 0, "pending": 0, "snoozed": 0, "unassigned": 0}
        assigned: dict[str, int] = {}
        for r in recount:
            expected[r["status"]] += r["n"]
            if r["status"] == "open":
                if r["assignee_id"] is None:
                    expected["unassigned"] += r["n"]
                else:
                    assigned[r["assignee_id"]] = r["n"]
        counters = (await inbox_counters(hub.pool, [made.id]))[made.id]
        assert {k: counters[k] for k in expected} == expected
        assert {k: v for k, v in counters["assigned"].items() if v} == assigned

    for i in range(4):
        await send(f"m{i}", f"c{i}")
    await check()
    ids = [
        r["id"]
        for r in await hub.pool.fetch(
            "SELECT id FROM conversations WHERE inbox_id = $1 ORDER BY id", made.id
        )
    ]
    assert (await patch(client, ids[0], {"assignee_id": agent})).status == 200
    await check()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    snoozed = await patch(client, ids[1], {"status": "snoozed", "snoozed_until": until})
    assert snoozed.status == 200
    assert (await patch(client, ids[2], {"status": "resolved"})).status == 200
    assert (await patch(client, ids[0], {"status": "pending"})).status == 200
    await check()
    await send("m-again", "c2")  # reopens the resolved one
    await send("m-wake", "c1")  # wakes the snoozed one
    await check()
    await hub.pool.execute("UPDATE conversations SET assignee_id = $1", agent)
    await check()
    await hub.pool.execute("DELETE FROM messages WHERE conversation_id = $1", ids[3])
    await hub.pool.execute("DELETE FROM conversations WHERE id = $1", ids[3])
    await check()


async def test_rows_carry_the_latest_message_and_a_contacts_conversations_can_be_listed(
    client: Client, hub: Hub
) -> None:
    inbox = await make_inbox(hub)
    context = await load_inbox(hub.pool, hub.box, inbox)
    assert context is not None

    async def inbound(provider_id: str, sender: str, text: str) -> Any:
        message = InboundMessage(provider_id, Sender("api", sender, sender.title()), text)
        return await hub.ingest.submit(IngestRequest(context, message, None))

    first = await inbound("m-1", "kamal", "Is my order on its way?")
    second = await inbound("m-2", "nimal", "Hello")
    reply = await client.post(
        f"/api/v1/conversations/{first.conversation_id}/messages",
        json={"content": "It ships today " + "x" * 200},
        headers=ADMIN,
    )
    assert reply.status == 201
    listed = await client.get(
        "/api/v1/conversations", params={"contact_id": first.contact_id}, headers=ADMIN
    )
    (row,) = (await listed.json())["data"]
    assert row["id"] == first.conversation_id
    assert row["last_message_preview"] == ("It ships today " + "x" * 200)[:140]
    received = await hub.pool.fetchval(
        "SELECT created_at FROM messages WHERE provider_message_id = 'm-1'"
    )
    assert datetime.fromisoformat(row["last_inbound_at"]) == received
    assert row["last_inbound_message_id"] == first.message_id  # the contact's, not the reply
    one = await client.get(f"/api/v1/conversations/{first.conversation_id}", headers=ADMIN)
    assert {k: v for k, v in (await one.json()).items() if k.startswith("last_")} == {
        k: v for k, v in row.items() if k.startswith("last_")
    }
    # no message from the contact (left): neither field
    await hub.pool.execute("DELETE FROM messages WHERE id = $1", second.message_id)
    alone = await client.get(f"/api/v1/conversations/{second.conversation_id}", headers=ADMIN)
    assert alone.status == 200
    assert (await alone.json())["last_inbound_at"] is None
    assert (await alone.json())["last_inbound_message_id"] is None

    # the conversation's changes, oldest first, from the journal
    assert (await patch(client, first.conversation_id, {"status": "resolved"})).status == 200
    await events_of(
        hub,
        first.conversation_id,
        lambda e: e["payload"].get("state", {}).get("status") == "resolved",
    )
    answer = await client.get(
        f"/api/v1/conversations/{first.conversation_id}/events", headers=ADMIN
    )
    assert answer.status == 200
    changes = (await answer.json())["data"]
    assert [c["type"] for c in changes] == ["conversation.created", "conversation.updated"]
    assert changes[1]["payload"]["previous"] == {"status": "open"}
    assert changes[1]["actor"] == {"kind": "agent", "id": "tests-admin"}
    bad = await client.get(
        f"/api/v1/conversations/{first.conversation_id}/events",
        params={"cursor": "WzFd"},  # [1]: a cursor of the wrong kind
        headers=ADMIN,
    )
    assert bad.status == 400
