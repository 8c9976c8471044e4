"""Users: invitations, listing without secrets, role changes, last-administrator protection and
disabling (which revokes the user's sessions and tokens at once)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.app import Hub
from hub.ids import new_id
from tests.api.admin_support import (
    ADMIN,
    Client,
    audit_entries,
    call,
    make_user,
    other_account,
)

pytestmark = pytest.mark.postgres
SECRET_WORDS = ("hash", "password", "secret", "invite_", "failed", "locked")


def assert_no_secrets(user: dict[str, Any]) -> None:
    assert not [k for k in user if any(w in k for w in SECRET_WORDS)], user


async def test_invite_a_user(client: Client, hub: Hub) -> None:
    status, made = await call(
        client,
        "POST",
        "/api/v1/users",
        json={"email": "Nimal@Example.COM", "name": " Nimal ", "role": "supervisor"},
    )
    assert status == 201, made
    user = made["user"]
    assert (user["email"], user["name"], user["role"], user["status"]) == (
        "nimal@example.com",
        "Nimal",
        "supervisor",
        "invited",
    )
    assert_no_secrets(user)
    token = made["invitation_token"]
    row = await hub.pool.fetchrow("SELECT * FROM users WHERE id = $1", user["id"])
    assert row is not None
    assert row["invite_hash"] == hashlib.sha256(token.encode()).digest()
    assert row["password_hash"] is None
    assert row["account_id"] == hub.account_id
    expires = row["invite_expires_at"]
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    [entry] = await audit_entries(hub, "user.invited")
    assert entry["object_id"] == user["id"]
    assert entry["details"] == {"email": "nimal@example.com", "role": "supervisor"}
    assert token not in str(dict(entry))

    status, again = await call(
        client, "POST", "/api/v1/users", json={"email": "NIMAL@example.com", "name": "Other"}
    )
    assert status == 409
    assert again["error"]["code"] == "email_taken"
    assert len(await audit_entries(hub, "user.invited")) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address", "name": "A"},
        {"email": "a@example.com\n", "name": "A"},
        {"email": "a@example.com", "name": ""},
        {"email": "a@example.com", "name": "A", "role": "owner"},
        {"email": "a@example.com", "name": "A", "password": "x"},
    ],
)
async def test_invalid_invitations(client: Client, hub: Hub, body: dict[str, Any]) -> None:
    status, answer = await call(client, "POST", "/api/v1/users", json=body)
    assert status == 422, answer
    assert await hub.pool.fetchval("SELECT count(*) FROM users") == 0


async def test_only_administrators_invite(client: Client, hub: Hub) -> None:
    _, supervisor = await make_user(hub, "supervisor")
    status, _ = await call(
        client, "POST", "/api/v1/users", supervisor, json={"email": "x@example.com", "name": "X"}
    )
    assert status == 403


async def test_list_filter_and_page_users(client: Client, hub: Hub) -> None:
    ids = [
        (await make_user(hub, role, name=name, email=f"{name.lower()}@shop.example"))[0]
        for role, name in (
            ("agent", "Kamal"),
            ("agent", "Nimal"),
            ("supervisor", "Sunil"),
            ("administrator", "Amara"),
        )
    ]
    other_id, _ = await other_account(hub)
    await make_user(hub, "agent", account_id=other_id, name="Kamala")
    _, agent = await make_user(hub, "agent", name="Zed")

    status, page = await call(client, "GET", "/api/v1/users", agent, params={"role": "agent"})
    assert status == 200
    assert [u["name"] for u in page["data"]] == ["Kamal", "Nimal", "Zed"]
    for user in page["data"]:
        assert_no_secrets(user)
    _, found = await call(client, "GET", "/api/v1/users", params={"q": "KAMAL"})
    assert [u["id"] for u in found["data"]] == [ids[0]], "never another account's Kamala"
    _, by_mail = await call(client, "GET", "/api/v1/users", params={"q": "sunil@"})
    assert [u["id"] for u in by_mail["data"]] == [ids[2]]
    _, none = await call(client, "GET", "/api/v1/users", params={"q": "%"})
    assert none["data"] == [], "LIKE wildcards are literal"

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = await call(client, "GET", "/api/v1/users", params=params)
        assert status == 200
        seen += [u["id"] for u in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5

    for bad in ({"limit": "0"}, {"limit": "201"}, {"role": "owner"}, {"q": ""}, {"x": "1"}):
        status, _ = await call(client, "GET", "/api/v1/users", params=bad)
        assert status == 400, bad


async def test_a_user_of_another_account_is_not_found(client: Client, hub: Hub) -> None:
    other_id, other = await other_account(hub)
    theirs, _ = await make_user(hub, "agent", account_id=other_id)
    ours, _ = await make_user(hub, "agent")
    for method, body in (("GET", None), ("PATCH", {"role": "supervisor"}), ("DELETE", None)):
        status, _ = await call(client, method, f"/api/v1/users/{theirs}", json=body)
        assert status == 404, method
        status, _ = await call(client, method, f"/api/v1/users/{ours}", other, json=body)
        assert status == 404, method
    assert (await call(client, "GET", "/api/v1/users/nope%00"))[0] == 404
    assert (await call(client, "GET", f"/api/v1/users/{ours}"))[0] == 200


async def test_role_changes_apply_at_once_and_are_audited(client: Client, hub: Hub) -> None:
    user_id, headers = await make_user(hub, "agent")
    status, _ = await call(client, "GET", "/api/v1/audit_log", headers)
    assert status == 403
    status, user = await call(
        client, "PATCH", f"/api/v1/users/{user_id}", json={"role": "administrator", "name": "New"}
    )
    assert status == 200, user
    assert (user["role"], user["name"]) == ("administrator", "New")
    status, _ = await call(client, "GET", "/api/v1/audit_log", headers)
    assert status == 200, "the cached principal was dropped"
    [entry] = await audit_entries(hub, "user.role_changed")
    assert entry["object_id"] == user_id
    assert entry["details"] == {"from": "agent", "to": "administrator"}
    [renamed] = await audit_entries(hub, "user.updated")
    assert renamed["details"] == {"changed": ["name"]}


async def test_the_last_active_administrator_stays(client: Client, hub: Hub) -> None:
    admin_id, admin = await make_user(hub, "administrator")
    await make_user(hub, "administrator", password=False)  # invited: cannot log in yet
    disabled_id, _ = await make_user(hub, "administrator")
    await call(client, "PATCH", f"/api/v1/users/{disabled_id}", json={"disabled": True})

    for method, body in (
        ("PATCH", {"role": "agent"}),
        ("PATCH", {"disabled": True}),
        ("DELETE", None),
    ):
        status, answer = await call(client, method, f"/api/v1/users/{admin_id}", admin, json=body)
        assert status == 409, (method, body)
        assert answer["error"]["code"] == "last_administrator"
    _, user = await call(client, "GET", f"/api/v1/users/{admin_id}")
    assert (user["role"], user["status"]) == ("administrator", "active")

    second_id, _ = await make_user(hub, "administrator")
    status, user = await call(
        client, "PATCH", f"/api/v1/users/{admin_id}", admin, json={"role": "agent"}
    )
    assert status == 200, user
    status, answer = await call(client, "DELETE", f"/api/v1/users/{second_id}")
    assert status == 409, "now the second one is the last"


async def test_disabling_revokes_sessions_and_tokens(client: Client, hub: Hub) -> None:
    user_id, headers = await make_user(hub, "agent")
    session_id = new_id()
    await hub.pool.execute(
        """INSERT INTO auth_sessions (id, user_id, account_id, expires_at)
           VALUES ($1, $2, $3, now() + interval '1 day')""",
        session_id,
        user_id,
        hub.account_id,
    )
    assert (await call(client, "GET", "/api/v1/account", headers))[0] == 200

    status, _ = await call(client, "DELETE", f"/api/v1/users/{user_id}")
    assert status == 204
    status, answer = await call(client, "GET", "/api/v1/account", headers)
    assert status == 401, answer
    assert await hub.pool.fetchval(
        "SELECT revoked_at IS NOT NULL FROM auth_sessions WHERE id = $1", session_id
    )
    assert await hub.pool.fetchval(
        "SELECT bool_and(revoked_at IS NOT NULL) FROM api_tokens WHERE user_id = $1", user_id
    )
    [entry] = await audit_entries(hub, "user.disabled")
    assert entry["details"] == {"sessions_revoked": 1, "api_tokens_revoked": 1}
    _, user = await call(client, "GET", f"/api/v1/users/{user_id}")
    assert user["status"] == "disabled"

    status, _ = await call(client, "DELETE", f"/api/v1/users/{user_id}")
    assert status == 204
    assert len(await audit_entries(hub, "user.disabled")) == 1, "already disabled: no entry"

    status, user = await call(client, "PATCH", f"/api/v1/users/{user_id}", json={"disabled": False})
    assert (status, user["status"]) == (200, "active")
    assert len(await audit_entries(hub, "user.enabled")) == 1
    status, _ = await call(client, "GET", "/api/v1/account", headers)
    assert status == 401, "enabling does not bring revoked tokens back"


async def test_disabling_an_invited_user_voids_the_invitation(client: Client, hub: Hub) -> None:
    _, made = await call(
        client, "POST", "/api/v1/users", ADMIN, json={"email": "i@example.com", "name": "I"}
    )
    await call(client, "DELETE", f"/api/v1/users/{made['user']['id']}")
    row = await hub.pool.fetchrow(
        "SELECT invite_hash, disabled_at FROM users WHERE id = $1", made["user"]["id"]
    )
    assert row is not None
    assert row["invite_hash"] is None
    assert row["disabled_at"] is not None
