"""Inboxes: credentials in clear once then always masked, credential changes audited by key name
only and effective for webhooks at once, deletion only without conversations, membership."""

from __future__ import annotations

from typing import Any

import pytest

from hub.app import Hub
from hub.config import Config
from tests.api.admin_support import Client, audit_entries, call, make_user, other_account
from tests.support.api_channel import api_body, signed_headers

pytestmark = pytest.mark.postgres
SECRET = "first-signing-secret-0123456789"
NEW_SECRET = "second-signing-secret-abcdefghij"
PUBLIC = "https://hub.example.com/"


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(public_url=PUBLIC)


async def _create(client: Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "Shop", "channel": "api", **fields}
    status, made = await call(client, "POST", "/api/v1/inboxes", json=body)
    assert status == 201, made
    return dict(made)


async def _webhook(client: Client, inbox_id: str, secret: str, message_id: str) -> int:
    body = api_body(message_id)
    response = await client.post(
        f"/webhooks/api/{inbox_id}", data=body, headers=signed_headers(secret, body)
    )
    return response.status


async def test_credentials_are_shown_once_then_masked(client: Client, hub: Hub) -> None:
    made = await _create(
        client,
        credentials={"signing_secret": SECRET, "pin": "pin-9z7x"},
        settings={"greeting": "Hi", "retries": 3, "tags": ["a"], "on": True, "ratio": 0.5},
        reopen_policy="new",
    )
    masked = {"pin": "••••", "signing_secret": "••••" + SECRET[-4:]}
    assert made["credentials"] == masked, "what the caller gave is not echoed"
    assert made["webhook_path"] == f"/webhooks/api/{made['id']}"
    assert made["webhook_url"] == f"https://hub.example.com/webhooks/api/{made['id']}"
    assert made["settings"]["retries"] == 3
    assert made["reopen_policy"] == "new"

    for path in (f"/api/v1/inboxes/{made['id']}", "/api/v1/inboxes"):
        response = await client.get(path, headers={"Authorization": "Bearer test-bootstrap-token"})
        text = await response.text()
        assert response.status == 200
        assert SECRET not in text and "pin-9z7x" not in text
    _, inbox = await call(client, "GET", f"/api/v1/inboxes/{made['id']}")
    assert inbox["credentials"] == masked
    _, listed = await call(client, "GET", "/api/v1/inboxes")
    assert listed["data"][0]["credentials"] == masked

    generated = await _create(client, name="Generated")
    made_secret = generated["credentials"]["signing_secret"]
    assert len(made_secret) >= 32, "made for an API inbox, shown in clear once"
    _, again = await call(client, "GET", f"/api/v1/inboxes/{generated['id']}")
    assert again["credentials"] == {"signing_secret": "••••" + made_secret[-4:]}
    assert await _webhook(client, generated["id"], made_secret, "m-generated") == 200

    [entry] = [e for e in await audit_entries(hub, "inbox.created") if e["object_id"] == made["id"]]
    assert entry["details"]["credential_keys"] == ["pin", "signing_secret"]
    row = await hub.pool.fetchval("SELECT a::text FROM audit_log a WHERE id = $1", entry["id"])
    assert SECRET not in row


async def test_a_credential_change_is_encrypted_audited_by_name_and_live(
    client: Client, hub: Hub
) -> None:
    made = await _create(client, credentials={"signing_secret": SECRET, "pin": "pin-9z7x"})
    path = f"/api/v1/inboxes/{made['id']}"
    assert await _webhook(client, made["id"], SECRET, "m-1") == 200  # caches the inbox

    status, changed = await call(
        client,
        "PATCH",
        path,
        json={"credentials": {"signing_secret": NEW_SECRET, "pin": None}, "name": "Shop 2"},
    )
    assert status == 200, changed
    assert changed["credentials"] == {"signing_secret": "••••" + NEW_SECRET[-4:]}
    assert changed["name"] == "Shop 2"
    stored = await hub.pool.fetchval("SELECT secrets FROM inboxes WHERE id = $1", made["id"])
    assert NEW_SECRET.encode() not in stored
    assert hub.box.open(stored) == {"signing_secret": NEW_SECRET}

    assert await _webhook(client, made["id"], SECRET, "m-2") == 403, "the old secret is dead"
    assert await _webhook(client, made["id"], NEW_SECRET, "m-3") == 200

    [entry] = await audit_entries(hub, "inbox.credentials_changed")
    assert entry["details"] == {"keys": ["pin", "signing_secret"]}
    audit_text = "\n".join(await hub.pool.fetchval("SELECT array_agg(a::text) FROM audit_log a"))
    for secret in (SECRET, NEW_SECRET, NEW_SECRET[-4:], "pin-9z7x"):
        assert secret not in audit_text
    [updated] = await audit_entries(hub, "inbox.updated")
    assert updated["details"] == {"changed": ["name"]}

    status, refused = await call(
        client, "PATCH", path, json={"credentials": {"signing_secret": None}}
    )
    assert (status, refused["error"]["code"]) == (422, "missing_credentials")
    assert await _webhook(client, made["id"], NEW_SECRET, "m-4") == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": "X", "channel": "carrier-pigeon"},
        {"name": "X", "channel": "api", "reopen_policy": "never"},
        {"name": "X", "channel": "api", "credentials": {"Key": "v"}},
        {"name": "X", "channel": "api", "credentials": {"signing_secret": ""}},
        {"name": "X", "channel": "api", "credentials": {"k": "a\u0000"}},
        {"name": "X", "channel": "api", "settings": {"k": "a\u0000"}},
        {"name": "X", "channel": "api", "settings": {"k": ["ok", "a\u0000"]}},
        {"name": "X", "channel": "api", "settings": {"k": {"nested": 1}}},
        {"name": "X", "channel": "api", "settings": {"k": 2**60}},
        {"channel": "api"},
    ],
)
async def test_invalid_inboxes(client: Client, hub: Hub, body: dict[str, Any]) -> None:
    status, answer = await call(client, "POST", "/api/v1/inboxes", json=body)
    assert status == 422, answer
    assert await hub.pool.fetchval("SELECT count(*) FROM inboxes") == 0


async def test_delete_only_an_inbox_without_conversations(client: Client, hub: Hub) -> None:
    used = await _create(client, credentials={"signing_secret": SECRET})
    empty = await _create(client, name="Empty")
    assert await _webhook(client, used["id"], SECRET, "m-1") == 200

    status, refused = await call(client, "DELETE", f"/api/v1/inboxes/{used['id']}")
    assert (status, refused["error"]["code"]) == (409, "inbox_has_conversations")
    assert (await call(client, "GET", f"/api/v1/inboxes/{used['id']}"))[0] == 200

    _, agent = await make_user(hub, "agent", inboxes=[empty["id"]])
    assert (await call(client, "DELETE", f"/api/v1/inboxes/{empty['id']}", agent))[0] == 403
    status, _ = await call(client, "DELETE", f"/api/v1/inboxes/{empty['id']}")
    assert status == 204
    assert (await call(client, "GET", f"/api/v1/inboxes/{empty['id']}"))[0] == 404
    assert await _webhook(client, empty["id"], SECRET, "m-2") == 404
    [entry] = await audit_entries(hub, "inbox.deleted")
    assert entry["object_id"] == empty["id"]


async def test_members_decide_what_an_agent_sees(client: Client, hub: Hub) -> None:
    shop = await _create(client, credentials={"signing_secret": SECRET})
    bank = await _create(client, name="Bank")
    agent_id, agent = await make_user(hub, "agent")
    other_id, other = await other_account(hub)
    stranger, _ = await make_user(hub, "agent", account_id=other_id)

    _, page = await call(client, "GET", "/api/v1/inboxes", agent)
    assert page["data"] == []
    status, refused = await call(
        client, "PUT", f"/api/v1/inboxes/{shop['id']}/members", json={"user_ids": [stranger]}
    )
    assert (status, refused["error"]["details"]) == (422, {"unknown": [stranger]})
    status, inbox = await call(
        client, "PUT", f"/api/v1/inboxes/{shop['id']}/members", json={"user_ids": [agent_id]}
    )
    assert (status, inbox["member_ids"]) == (200, [agent_id])
    [entry] = await audit_entries(hub, "inbox.members_changed")
    assert entry["details"] == {"added": [agent_id], "removed": []}

    _, page = await call(client, "GET", "/api/v1/inboxes", agent)
    assert [i["id"] for i in page["data"]] == [shop["id"]]
    assert page["data"][0]["credentials"] == {}, "only inbox managers see even masked values"
    assert (await call(client, "GET", f"/api/v1/inboxes/{shop['id']}", agent))[0] == 200
    assert (await call(client, "GET", f"/api/v1/inboxes/{bank['id']}", agent))[0] == 404

    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"name": "Mine"}),
        ("DELETE", "", None),
        ("PUT", "/members", {"user_ids": []}),
    ):
        status, _ = await call(
            client, method, f"/api/v1/inboxes/{shop['id']}{suffix}", other, json=body
        )
        assert status == 404, (method, suffix)
    _, theirs = await call(client, "GET", "/api/v1/inboxes", other)
    assert theirs["data"] == []


async def test_the_channel_checks_the_settings(client: Client, hub: Hub) -> None:
    twilio = {"account_sid": "AC" + "1" * 32, "auth_token": "twilio-auth-token-0123"}
    status, refused = await call(
        client,
        "POST",
        "/api/v1/inboxes",
        json={"name": "SMS", "channel": "twilio", "credentials": twilio},
    )
    assert (status, refused["error"]["code"]) == (422, "invalid_settings")
    status, refused = await call(
        client,
        "POST",
        "/api/v1/inboxes",
        json={
            "name": "SMS",
            "channel": "twilio",
            "settings": {"kind": "sms", "from_number": "+94771234567"},
        },
    )
    assert (status, refused["error"]["code"]) == (422, "invalid_inbox"), "credentials missing"
    made = await _create(
        client,
        name="SMS",
        channel="twilio",
        credentials=twilio,
        settings={"kind": "sms", "from_number": "+94771234567"},
    )
    path = f"/api/v1/inboxes/{made['id']}"
    status, refused = await call(client, "PATCH", path, json={"settings": {"kind": "fax"}})
    assert (status, refused["error"]["code"]) == (422, "invalid_settings")
    status, changed = await call(
        client,
        "PATCH",
        path,
        json={"settings": {"kind": "whatsapp", "from_number": "+94771234567"}},
    )
    assert (status, changed["settings"]["kind"]) == (200, "whatsapp")
