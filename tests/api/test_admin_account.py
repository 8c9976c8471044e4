"""GET/PATCH /api/v1/account: settings of the caller's account, validated and audited."""

from __future__ import annotations

from typing import Any

import pytest

from hub.app import Hub
from tests.api.admin_support import ADMIN, Client, audit_entries, call, make_user, other_account

pytestmark = pytest.mark.postgres


async def test_read_and_change_the_account(client: Client, hub: Hub) -> None:
    _, agent = await make_user(hub, "agent")
    status, account = await call(client, "GET", "/api/v1/account", agent)
    assert status == 200
    assert account["id"] == hub.account_id
    assert (account["time_zone"], account["business_hours"], account["mfa_required"]) == (
        "UTC",
        [],
        False,
    )

    hours = [
        {"day": 0, "open": "09:00", "close": "17:30"},
        {"day": 5, "open": "22:00", "close": "02:00"},  # overnight
    ]
    status, changed = await call(
        client,
        "PATCH",
        "/api/v1/account",
        json={
            "name": "  Acme  ",
            "time_zone": "Asia/Colombo",
            "business_hours": hours,
            "mfa_required": True,
        },
    )
    assert status == 200, changed
    assert changed["name"] == "Acme"
    assert changed["time_zone"] == "Asia/Colombo"
    assert changed["business_hours"] == hours
    assert changed["mfa_required"] is True
    status, again = await call(client, "GET", "/api/v1/account", agent)
    assert again == changed

    [entry] = await audit_entries(hub, "account.updated")
    assert entry["object_id"] == hub.account_id
    assert entry["actor_type"] == "api_token"
    assert entry["details"]["changes"]["time_zone"] == {"from": "UTC", "to": "Asia/Colombo"}
    assert entry["details"]["changes"]["mfa_required"] == {"from": False, "to": True}

    status, _ = await call(client, "PATCH", "/api/v1/account", json={"name": "Acme"})
    assert status == 200
    assert len(await audit_entries(hub, "account.updated")) == 1, "no change, no entry"


@pytest.mark.parametrize(
    "body",
    [
        {"time_zone": "Mars/Olympus_Mons"},
        {"time_zone": "../../etc/passwd"},
        {"business_hours": [{"day": 7, "open": "09:00", "close": "17:00"}]},
        {"business_hours": [{"day": 1, "open": "24:00", "close": "17:00"}]},
        {"business_hours": [{"day": 1, "open": "9:00", "close": "17:00"}]},
        {"business_hours": [{"day": 1, "open": "09:00\n", "close": "17:00"}]},
        {"business_hours": [{"day": 1, "open": "09:00"}]},
        {"name": "   "},
        {"name": "a\u0000b"},
        {"mfa_required": "yes"},
        {"colour": "red"},
    ],
)
async def test_invalid_changes_are_refused_and_change_nothing(
    client: Client, hub: Hub, body: dict[str, Any]
) -> None:
    status, answer = await call(client, "PATCH", "/api/v1/account", json=body)
    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_body"
    _, account = await call(client, "GET", "/api/v1/account")
    assert (account["time_zone"], account["business_hours"]) == ("UTC", [])
    assert await audit_entries(hub, "account.updated") == []


async def test_only_administrators_change_the_account_and_only_their_own(
    client: Client, hub: Hub
) -> None:
    _, supervisor = await make_user(hub, "supervisor")
    status, _ = await call(client, "PATCH", "/api/v1/account", supervisor, json={"name": "x"})
    assert status == 403
    other_id, other = await other_account(hub)
    status, theirs = await call(client, "PATCH", "/api/v1/account", other, json={"name": "Them"})
    assert status == 200
    assert theirs["id"] == other_id
    _, ours = await call(client, "GET", "/api/v1/account", ADMIN)
    assert ours["name"] != "Them"
