"""The first run over REST: a hub with no users takes one setup (account name, time zone, the
first administrator) from whoever holds the setup token; a wrong token or a weak password
changes nothing; of concurrent setups exactly one wins; afterwards the setup routes and page
answer 404. Also the channel list the console's inbox wizard is built from, and the field names
that refusals of an inbox carry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.actions.first_run import setup_token
from hub.app import Hub
from server.cli import _setup_link
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def body(hub: Hub, **changes: Any) -> dict[str, Any]:
    return {
        "setup_token": setup_token(hub.box, hub.account_id),
        "account_name": "Lanka Teas",
        "time_zone": "Asia/Colombo",
        "name": "Ana Perera",
        "email": "ana@example.com",
        "password": "correct horse battery",
        **changes,
    }


async def users(hub: Hub) -> int:
    count: int = await hub.pool.fetchval("SELECT count(*) FROM users")
    return count


async def test_setup_once_then_gone(hub: Hub, client: TestClient[Any, Any]) -> None:
    state = await client.get("/api/v1/setup")
    assert state.status == 200
    assert (await state.json())["needed"] is True
    page = await client.get("/setup")
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    assert setup_token(hub.box, hub.account_id) in await _setup_link(hub, hub.config)

    done = await client.post("/api/v1/setup", json=body(hub))
    assert done.status == 201, await done.text()
    session = await done.json()
    assert session["user"]["role"] == "administrator"
    me = await client.get(
        "/api/v1/account", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    account = await me.json()
    assert (account["name"], account["time_zone"]) == ("Lanka Teas", "Asia/Colombo")
    entry = await hub.pool.fetchval("SELECT action FROM audit_log WHERE action = 'hub.first_run'")
    assert entry == "hub.first_run"

    assert (await client.get("/api/v1/setup")).status == 404
    assert (await client.get("/setup")).status == 404
    again = await client.post("/api/v1/setup", json=body(hub, email="eve@example.com"))
    assert again.status == 404
    assert await users(hub) == 1
    assert await _setup_link(hub, hub.config) == ""


async def test_wrong_token_and_weak_password_change_nothing(
    hub: Hub, client: TestClient[Any, Any]
) -> None:
    wrong = await client.post("/api/v1/setup", json=body(hub, setup_token="guessed"))
    assert wrong.status == 403
    error = (await wrong.json())["error"]
    assert error["code"] == "invalid_setup_token"
    assert error["details"]["field"] == "setup_token"

    weak = await client.post("/api/v1/setup", json=body(hub, password="short1"))
    assert weak.status == 422
    error = (await weak.json())["error"]
    assert (error["code"], error["details"]["field"]) == ("weak_password", "password")

    zone = await client.post("/api/v1/setup", json=body(hub, time_zone="Mars/Olympus"))
    assert zone.status == 422
    assert await users(hub) == 0
    name = await hub.pool.fetchval("SELECT name FROM accounts WHERE id = $1", hub.account_id)
    assert name != "Lanka Teas"
    assert (await client.get("/api/v1/setup")).status == 200


async def test_concurrent_setups_exactly_one_wins(hub: Hub, client: TestClient[Any, Any]) -> None:
    attempts = [
        client.post("/api/v1/setup", json=body(hub, email=f"admin{i}@example.com"))
        for i in range(6)
    ]
    statuses = sorted(r.status for r in await asyncio.gather(*attempts))
    assert statuses == [201] + [404] * 5, statuses
    assert await users(hub) == 1


async def test_channel_list_and_inbox_refusals_name_the_field(
    client: TestClient[Any, Any],
) -> None:
    listed = await client.get("/api/v1/channels", headers=ADMIN)
    assert listed.status == 200
    channels = {c["id"]: c for c in (await listed.json())["data"]}
    assert channels["twilio"]["required_secrets"] == ["account_sid", "auth_token"]
    assert "from_number" in channels["twilio"]["optional_settings"]
    assert channels["api"]["generated_secrets"] == ["signing_secret"]
    assert channels["whatsapp_cloud"]["get_handshake"] is True
    assert channels["sip"]["webhooks"] is False

    made = await client.post(
        "/api/v1/inboxes", json={"name": "Shop", "channel": "api"}, headers=ADMIN
    )
    assert made.status == 201
    twin = await client.post(
        "/api/v1/inboxes", json={"name": " shop ", "channel": "api"}, headers=ADMIN
    )
    assert twin.status == 409
    error = (await twin.json())["error"]
    assert (error["code"], error["details"]["field"]) == ("name_taken", "name")

    sms = {
        "name": "SMS",
        "channel": "twilio",
        "settings": {"kind": "sms", "from_number": "0771234567"},
        "credentials": {"account_sid": "AC123", "auth_token": "secret-token"},
    }
    bad = await client.post("/api/v1/inboxes", json=sms, headers=ADMIN)
    assert bad.status == 422
    error = (await bad.json())["error"]
    assert (error["code"], error["details"]["field"]) == (
        "invalid_settings",
        "settings.from_number",
    )
    url = {"name": "Out", "channel": "api", "settings": {"outbound_url": "ftp://x"}}
    bad = await client.post("/api/v1/inboxes", json=url, headers=ADMIN)
    assert (await bad.json())["error"]["details"]["field"] == "settings.outbound_url"
    wa = {
        "name": "WhatsApp",
        "channel": "whatsapp_cloud",
        "settings": {"phone_number_id": "1234567890"},
        "credentials": {"access_token": "EAAG-token", "app_secret": "app-secret-value"},
    }
    made = await client.post("/api/v1/inboxes", json=wa, headers=ADMIN)
    assert made.status == 201, await made.text()
    shown = (await made.json())["credentials"]
    assert len(shown["verify_token"]) > 20 and "•" not in shown["verify_token"]
    assert shown["app_secret"].startswith("••••")
    count = await client.get("/api/v1/inboxes", headers=ADMIN)
    assert [i["name"] for i in (await count.json())["data"]] == ["Shop", "WhatsApp"]
