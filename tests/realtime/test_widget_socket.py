"""The web chat visitors' namespace ``/widget`` with python-socketio visitors: refusals (origin,
tampered token, forged identity hash, unknown inbox) store nothing and are logged; messages go in
once; agents' replies and typing reach the visitor, private notes never; a reconnect replays what
was missed, in order; abuse limits; the pre-chat form, offline mode, uploads and the rating."""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
from typing import Any

import aiohttp
import pytest

from automation.business_hours_store import set_hours
from hub.actions.setup import CreatedInbox, create_inbox
from hub.app import Hub
from hub.business_hours import Schedule
from realtime.widget.tokens import identity_hash
from tests.conftest import ADMIN_TOKEN
from tests.realtime.agents import Agent
from tests.realtime.widget_client import Refused, Visitor

pytestmark = pytest.mark.postgres
SHOP = "https://shop.example"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def webchat(hub: Hub, name: str = "Website", **settings: Any) -> CreatedInbox:
    async with hub.pool.acquire() as conn:
        return await create_inbox(
            conn,
            hub.box,
            account_id=hub.account_id,
            channel="webchat",
            name=name,
            settings={"allowed_origins": SHOP, **settings},
        )


async def stored(hub: Hub) -> tuple[int, int, int]:
    row = await hub.pool.fetchrow(
        """SELECT (SELECT count(*) FROM contacts) AS c, (SELECT count(*) FROM conversations) AS v,
                  (SELECT count(*) FROM messages) AS m"""
    )
    assert row is not None
    return row["c"], row["v"], row["m"]


async def refused(server: str, origin: str | None, **auth: Any) -> str | None:
    visitor = Visitor()
    with pytest.raises(Refused) as caught:
        await visitor.connect(server, origin, **auth)
    await visitor.close()
    return caught.value.code


async def test_refusals_store_nothing_and_are_logged(
    hub: Hub, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = await webchat(hub)
    other = await webchat(hub, "Other site")
    secret = inbox.secrets["identity_secret"]
    first = Visitor()
    await first.connect(server, SHOP, inbox_id=inbox.id)
    assert first.session is not None
    token = first.session["visitor_token"]
    await first.close()
    before = await stored(hub)
    caplog.set_level(logging.INFO)

    assert await refused(server, None, inbox_id=inbox.id) == "origin_not_allowed"
    assert await refused(server, "https://evil.example", inbox_id=inbox.id) == "origin_not_allowed"
    assert await refused(server, SHOP, inbox_id="01NOSUCHINBOX") == "unknown_inbox"
    assert await refused(server, SHOP) == "unknown_inbox"
    assert await refused(server, SHOP, inbox_id="x\x00") == "unknown_inbox"
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert await refused(server, SHOP, inbox_id=inbox.id, visitor_token=tampered) == (
        "invalid_visitor_token"
    )
    assert await refused(server, SHOP, inbox_id=other.id, visitor_token=token) == (
        "invalid_visitor_token"
    )
    assert await refused(server, SHOP, inbox_id=inbox.id, visitor_token=42) == (
        "invalid_visitor_token"
    )
    forged = identity_hash("not the secret", "cust-1")
    assert await refused(
        server, SHOP, inbox_id=inbox.id, identifier="cust-1", identifier_hash=forged
    ) == ("invalid_identity")
    assert await refused(server, SHOP, inbox_id=inbox.id, identifier="cust-1") == (
        "invalid_identity"
    )
    assert await refused(server, SHOP, inbox_id=inbox.id, last_seq=-1) == "invalid_last_seq"
    assert await stored(hub) == before
    codes = [getattr(r, "code", None) for r in caplog.records if r.msg == "widget visitor refused"]
    assert "origin_not_allowed" in codes and "invalid_identity" in codes

    # the right hash is the customer, on any device; junk calls are refused, the socket stays
    known = Visitor()
    right = identity_hash(secret, "cust-1")
    await known.connect(server, SHOP, inbox_id=inbox.id, identifier="cust-1", identifier_hash=right)
    assert known.session is not None and known.session["visitor_token"] is None
    assert (await known.call("message", "hello"))["error"]["code"] == "invalid_message"
    assert (await known.say("a\x00b", "c-1"))["error"]["code"] == "invalid_message"
    assert (await known.call("message", {"content": "x", "client_id": "no spaces"}))["error"][
        "code"
    ] == "invalid_message"
    assert (await known.say("   ", "c-2"))["error"]["code"] == "invalid_message"
    assert await stored(hub) == before
    assert (await known.say("Hello from cust-1", "c-3"))["ok"]
    address = await hub.pool.fetchval(
        "SELECT address FROM contact_identities WHERE channel = 'webchat' ORDER BY address LIMIT 1"
    )
    assert address == "user:cust-1"
    await known.close()


async def test_replies_typing_and_replay_after_reconnect(hub: Hub, server: str) -> None:
    inbox = await webchat(hub)
    visitor = Visitor()
    await visitor.connect(server, SHOP, inbox_id=inbox.id)
    assert visitor.session is not None and visitor.history == {"head": 0, "messages": []}
    token = visitor.session["visitor_token"]
    sent = await visitor.say("Is the shop open on Sunday?", "m-1")
    assert sent["ok"] and not sent["duplicate"]
    again = await visitor.say("Is the shop open on Sunday?", "m-1")
    assert again["id"] == sent["id"] and again["duplicate"]
    conversation = await hub.pool.fetchval("SELECT id FROM conversations")
    await visitor.wait_until(lambda: len(visitor.messages()) == 1)
    assert visitor.messages()[0]["from"] == "visitor"
    assert visitor.messages()[0]["client_id"] == "m-1"

    agent = Agent()
    await agent.connect(server, token=ADMIN_TOKEN)
    joined = await agent.client.call(
        "join", {"conversation_id": conversation}, namespace="/agent", timeout=10
    )
    assert joined["ok"]
    await agent.client.call(
        "typing", {"conversation_id": conversation, "on": True}, namespace="/agent", timeout=10
    )
    await visitor.wait_until(lambda: visitor.typing == [True])

    async def reply(content: str, private: bool = False) -> None:
        answer = await agent.client.call(
            "send_message",
            {"conversation_id": conversation, "content": content, "private": private},
            namespace="/agent",
            timeout=10,
        )
        assert answer["ok"], answer

    await reply("Yes, 9 to 1")
    await reply("Customer asks every week", private=True)
    await reply("See you then")
    await visitor.wait_until(lambda: len(visitor.messages()) == 3)
    assert [m["content"] for m in visitor.messages()] == [
        "Is the shop open on Sunday?",
        "Yes, 9 to 1",
        "See you then",
    ]
    seen = visitor.last_seq
    await visitor.close()

    await reply("We also deliver")
    await reply("Internal only", private=True)
    await reply("Free over 5000")
    back = Visitor()
    await back.connect(server, SHOP, inbox_id=inbox.id, visitor_token=token, last_seq=seen)
    assert back.session is not None and back.session["visitor_token"] is None
    assert back.history is None  # a replay, not the history
    await back.wait_until(lambda: len(back.messages()) == 2)
    await asyncio.sleep(0.3)
    assert [m["content"] for m in back.messages()] == ["We also deliver", "Free over 5000"]
    seqs = [i["seq"] for i in back.items]
    assert seqs == sorted(seqs) and min(seqs) > (seen or 0)
    await back.close()

    # a reload (no last_seq): the history, without the private notes
    reload = Visitor()
    await reload.connect(server, SHOP, inbox_id=inbox.id, visitor_token=token)
    assert reload.history is not None
    assert [m["content"] for m in reload.history["messages"]] == [
        "Is the shop open on Sunday?",
        "Yes, 9 to 1",
        "See you then",
        "We also deliver",
        "Free over 5000",
    ]
    # the visitor's typing reaches the agent
    assert (await reload.call("typing", {"on": True}))["ok"]
    typing: list[dict[str, Any]] = []
    agent.client.on("typing", typing.append, namespace="/agent")
    assert (await reload.call("typing", {"on": False}))["ok"]
    await visitor.wait_until(lambda: bool(typing))
    assert typing[0]["conversation_id"] == conversation and typing[0]["on"] is False
    await reload.close()
    await agent.client.disconnect()


async def test_abuse_limits(hub: Hub, server: str) -> None:
    inbox = await webchat(hub, visitor_messages_per_minute=3, ip_messages_per_minute=5)
    one = Visitor()
    await one.connect(server, SHOP, inbox_id=inbox.id)
    answers = [await one.say(f"message {n}", f"a-{n}") for n in range(4)]
    assert [a.get("ok", False) for a in answers] == [True, True, True, False]
    assert answers[3]["error"]["code"] == "rate_limited"
    two = Visitor()  # the same address: two more fit its per-address budget of 5
    await two.connect(server, SHOP, inbox_id=inbox.id)
    answers = [await two.say(f"message {n}", f"b-{n}") for n in range(3)]
    assert [a.get("ok", False) for a in answers] == [True, True, False]
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 5
    # typing, the form and ratings have a budget of their own (120 a minute)
    # (fired together: the bucket refills 2 a second, so a slow machine lets a few more pass)
    typing = await asyncio.gather(*(one.call("typing", {"on": True}) for _ in range(200)))
    passed = sum(1 for t in typing if t.get("ok"))
    refused = [t["error"]["code"] for t in typing if not t.get("ok")]
    assert passed >= 120 and len(refused) >= 50 and set(refused) == {"rate_limited"}
    await one.close()
    await two.close()

    # a visitor (here an identified customer) may hold at most N open conversations
    roomy = await webchat(hub, "Second site")
    other = await webchat(hub, "Third site", max_open_conversations=1)
    here = identity_hash(roomy.secrets["identity_secret"], "cust-9")
    there = identity_hash(other.secrets["identity_secret"], "cust-9")
    first = Visitor()
    await first.connect(server, SHOP, inbox_id=roomy.id, identifier="cust-9", identifier_hash=here)
    assert (await first.say("first", "c-1"))["ok"]
    second = Visitor()
    await second.connect(
        server, SHOP, inbox_id=other.id, identifier="cust-9", identifier_hash=there
    )
    refused_open = await second.say("second", "c-1")
    assert refused_open["error"]["code"] == "too_many_conversations"
    assert await hub.pool.fetchval("SELECT count(*) FROM conversations") == 3
    await first.close()
    await second.close()


async def test_prechat_offline_uploads_and_rating(hub: Hub, server: str) -> None:
    inbox = await webchat(hub, prechat_fields="name!,email", upload_max_bytes=1000)
    visitor = Visitor()
    await visitor.connect(server, SHOP, inbox_id=inbox.id)
    assert visitor.session is not None
    assert visitor.session["prechat"] == [
        {"field": "name", "required": True},
        {"field": "email", "required": False},
    ]
    assert visitor.session["open"] is True
    assert (await visitor.say("hi", "p-1"))["error"]["code"] == "prechat_required"
    bad = await visitor.call("prechat", {"name": "Nimal", "email": "not an address"})
    assert bad["error"]["code"] == "invalid_email"
    assert (await visitor.call("prechat", {"name": "Nimal", "email": "nimal@Example.LK"}))["ok"]
    assert (await visitor.say("hi", "p-1"))["ok"]
    contact = await hub.pool.fetchrow("SELECT id, name FROM contacts")
    assert contact is not None and contact["name"] == "Nimal"
    emails = await hub.pool.fetch(
        "SELECT address FROM contact_identities WHERE channel = 'email' AND contact_id = $1",
        contact["id"],
    )
    assert [r["address"] for r in emails] == ["nimal@example.lk"]

    # uploads: type, size and content checked before anything is stored
    async def upload(name: str, kind: str, data: bytes, cid: str) -> dict[str, Any]:
        encoded = base64.b64encode(data).decode()
        return await visitor.call(
            "upload", {"name": name, "type": kind, "client_id": cid, "data": encoded}
        )

    assert (await upload("a.exe", "application/x-msdownload", b"MZ", "u-1"))["error"][
        "code"
    ] == "type_not_allowed"
    assert (await upload("big.png", "image/png", PNG * 20, "u-2"))["error"]["code"] == "too_large"
    assert (await upload("fake.png", "image/png", b"GIF89a....", "u-3"))["error"][
        "code"
    ] == "invalid_upload"
    not_base64 = await visitor.call(
        "upload", {"name": "x.png", "type": "image/png", "client_id": "u-5", "data": "%%%"}
    )
    assert not_base64["error"]["code"] == "invalid_upload"
    assert await hub.pool.fetchval("SELECT count(*) FROM media") == 0
    done = await upload("photo.png", "image/png", PNG, "u-4")
    assert done["ok"], done
    attachments = await hub.pool.fetchval(
        "SELECT attachments::text FROM messages WHERE id = $1", done["id"]
    )
    assert "photo.png" in attachments
    assert await hub.pool.fetchval("SELECT count(*) FROM media") == 1

    # the rating: only once the conversation is resolved, and once
    conversation = await hub.pool.fetchval("SELECT id FROM conversations")
    early = await visitor.call("rate", {"conversation_id": conversation, "rating": 5})
    assert early["error"]["code"] == "not_resolved"
    async with aiohttp.ClientSession() as http:
        resolved = await http.patch(
            f"{server}api/v1/conversations/{conversation}",
            json={"status": "resolved"},
            headers=ADMIN,
        )
        assert resolved.status == 200, await resolved.text()
    await visitor.wait_until(
        lambda: any(i["type"] == "status" and i["status"] == "resolved" for i in visitor.items)
    )
    assert (await visitor.call("rate", {"conversation_id": conversation, "rating": 9}))["error"][
        "code"
    ] == "invalid_rating"
    assert (await visitor.call("rate", {"conversation_id": conversation, "rating": 4}))["ok"]
    again = await visitor.call("rate", {"conversation_id": conversation, "rating": 5})
    assert again["error"]["code"] == "already_rated"
    assert await hub.pool.fetchval("SELECT rating FROM conversation_ratings") == 4
    async with asyncio.timeout(10):
        while not await hub.pool.fetchval(
            "SELECT count(*) FROM event_log WHERE type = 'conversation.rated'"
        ):
            await asyncio.sleep(0.05)
    await visitor.close()

    # offline (business hours say closed): a new visitor must leave an email first
    closed = await webchat(hub, "After hours")
    async with hub.pool.acquire() as conn:
        await set_hours(
            conn,
            account_id=hub.account_id,
            inbox_id=closed.id,
            schedule=Schedule("UTC", ()),
            out_of_office=False,
            out_of_office_message=None,
        )
    late = Visitor()
    await late.connect(server, SHOP, inbox_id=closed.id)
    assert late.session is not None and late.session["open"] is False
    assert (await late.say("anyone there?", "o-1"))["error"]["code"] == "prechat_required"
    assert (await late.call("prechat", {"email": "late@example.com"}))["ok"]
    assert (await late.say("anyone there?", "o-1"))["ok"]
    await late.close()


async def test_widget_files_and_the_channel_has_no_webhook(hub: Hub, server: str) -> None:
    """The script, stylesheet and Socket.IO module are served to other sites (CORS), together
    under 30 KB gzipped; a webhook POST to a web chat inbox is a 404 JSON error storing nothing."""
    inbox = await webchat(hub)
    total = 0
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for name, kind in (
            ("widget.js", "text/javascript"),
            ("widget.css", "text/css"),
            ("socket.io.esm.min.js", "text/javascript"),
        ):
            async with http.get(
                f"{server}widget/{name}", headers={"Accept-Encoding": "identity"}
            ) as response:
                assert response.status == 200, name
                assert response.content_type == kind
                assert response.headers["Access-Control-Allow-Origin"] == "*"
                total += len(gzip.compress(await response.read()))
        assert total < 30 * 1024, total
        for path in ("widget/nope.js", "widget/..%2fpyproject.toml", "widget/package.json"):
            async with http.get(server + path) as response:
                assert response.status == 404, path
        async with http.get(f"{server}api/v1/channels", headers=ADMIN) as response:
            listed = {c["id"]: c for c in (await response.json())["data"]}
        assert listed["webchat"]["webhooks"] is False  # the console shows the embed code instead
        assert "allowed_origins" in listed["webchat"]["optional_settings"]
        for settings, field in (
            ({"allowed_origins": "shop.example/path"}, "allowed_origins"),
            ({"prechat_fields": "phone"}, "prechat_fields"),
            ({"upload_max_bytes": 10**9}, "upload_max_bytes"),
        ):
            body = {"name": "Bad", "channel": "webchat", "settings": settings}
            async with http.post(f"{server}api/v1/inboxes", json=body, headers=ADMIN) as response:
                assert response.status == 422
                error = (await response.json())["error"]
                assert error["details"]["field"] == f"settings.{field}", error
        async with http.post(f"{server}webhooks/webchat/{inbox.id}", data=b"{}") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "no_webhook"
    assert await stored(hub) == (0, 0, 0)
