"""The caller's profile: name and availability, password change, MFA management and personal API
tokens (scopes, use, revocation)."""

from __future__ import annotations

import pyotp
import pytest

from hub.app import Hub
from hub.config import Config
from tests.api.auth_support import (
    PASSWORD,
    Client,
    audit_actions,
    bearer,
    get,
    logged_in,
    login,
    make_user,
    next_code,
    post,
    wrong_code,
)
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.postgres


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(rate_limit_login=10_000.0)


async def test_profile_read_and_change(hub: Hub, client: Client) -> None:
    user_id = await make_user(hub)
    token = (await logged_in(client))["access_token"]
    status, profile = await get(client, "/api/v1/profile", token)
    assert status == 200
    assert profile["id"] == user_id and profile["email"] == "ana@example.com"
    assert profile["availability"] == "offline" and profile["mfa_enabled"] is False
    assert not {"password_hash", "mfa_secret"} & set(profile)

    change = {"name": "  Ana Perera ", "availability": "busy"}
    response = await client.patch("/api/v1/profile", json=change, headers=bearer(token))
    assert response.status == 200
    changed = await response.json()
    assert changed["name"] == "Ana Perera" and changed["availability"] == "busy"
    for bad in ({"availability": "away"}, {"name": ""}, {"role": "administrator"}):
        response = await client.patch("/api/v1/profile", json=bad, headers=bearer(token))
        assert response.status == 422, bad
    assert (await get(client, "/api/v1/profile", token))[1]["role"] == "agent"

    status, data = await get(client, "/api/v1/profile", ADMIN_TOKEN)
    assert status == 403 and data["error"]["code"] == "not_a_user"


async def test_changing_the_password_ends_the_other_sessions(hub: Hub, client: Client) -> None:
    await make_user(hub)
    mine = (await logged_in(client))["access_token"]
    other = (await logged_in(client))["access_token"]
    path = "/api/v1/profile/password"
    wrong = await post(client, path, {"current_password": "nope", "new_password": "x" * 12}, mine)
    assert wrong[0] == 422 and wrong[1]["error"]["code"] == "invalid_password"
    short = await post(client, path, {"current_password": PASSWORD, "new_password": "short"}, mine)
    assert short[0] == 422
    weak = {"current_password": PASSWORD, "new_password": "ana@example.com"}
    weak_answer = await post(client, path, weak, mine)
    assert weak_answer[0] == 422 and weak_answer[1]["error"]["code"] == "weak_password"
    new = "a much better passphrase"
    status, _, _ = await post(
        client, path, {"current_password": PASSWORD, "new_password": new}, mine
    )
    assert status == 204
    assert (await get(client, "/api/v1/profile", mine))[0] == 200
    assert (await get(client, "/api/v1/profile", other))[0] == 401
    assert (await login(client))[0] == 401
    assert (await login(client, password=new))[0] == 200
    assert "user.password_changed" in await audit_actions(hub)


async def test_mfa_backup_codes_and_disabling(hub: Hub, client: Client) -> None:
    await make_user(hub)
    token = (await logged_in(client))["access_token"]
    _, enrolment, _ = await post(client, "/api/v1/profile/mfa/enrol", None, token)
    totp = pyotp.TOTP(enrolment["secret"])
    status, first, _ = await post(
        client, "/api/v1/profile/mfa/confirm", {"code": totp.now()}, token
    )
    assert status == 200
    again = await post(client, "/api/v1/profile/mfa/enrol", None, token)
    assert again[0] == 409 and again[1]["error"]["code"] == "mfa_already_enabled"

    path = "/api/v1/profile/mfa/backup_codes"
    refused = await post(client, path, {"code": wrong_code(totp)}, token)
    assert refused[0] == 422
    status, second, _ = await post(client, path, {"code": next_code(totp)}, token)
    assert status == 200 and not set(second["backup_codes"]) & set(first["backup_codes"])

    _, challenge, _ = await login(client)
    old = {"mfa_token": challenge["mfa_token"], "backup_code": first["backup_codes"][0]}
    assert (await post(client, "/api/v1/auth/mfa", old))[0] == 401, "old codes stop working"

    disable = "/api/v1/profile/mfa/disable"
    body = {"password": "wrong password", "backup_code": second["backup_codes"][0]}
    status, data, _ = await post(client, disable, body, token)
    assert status == 422 and data["error"]["code"] == "invalid_password"
    body["password"] = PASSWORD
    status, _, _ = await post(client, disable, body, token)
    assert status == 204
    assert (await login(client))[1]["status"] == "authenticated", "no code asked any more"
    actions = await audit_actions(hub)
    for action in ("mfa.enabled", "mfa.backup_codes_regenerated", "mfa.disabled"):
        assert action in actions


async def test_personal_api_tokens(hub: Hub, client: Client) -> None:
    user_id = await make_user(hub)
    await make_user(hub, email="other@example.com")
    session = (await logged_in(client))["access_token"]
    other = (await logged_in(client, email="other@example.com"))["access_token"]
    path = "/api/v1/profile/tokens"

    body = {"name": "reports", "scopes": ["conversations:read"], "expires_in_days": 30}
    status, made, _ = await post(client, path, body, session)
    assert status == 201, made
    token = made["token"]
    assert token.startswith("hub_") and made["token_prefix"] == token[:8]
    assert made["scopes"] == ["conversations:read"] and made["expires_at"] is not None
    stored = await hub.pool.fetchrow("SELECT * FROM api_tokens WHERE id = $1", made["id"])
    assert stored is not None and stored["user_id"] == user_id
    assert token.encode() not in stored["token_hash"] and token not in str(dict(stored))

    status, listed = await get(client, path, session)
    assert status == 200 and [t["id"] for t in listed["data"]] == [made["id"]]
    assert "token" not in listed["data"][0] and listed["data"][0]["last_used_at"] is None

    assert (await get(client, "/api/v1/conversations", token))[0] == 200
    write = await post(client, "/api/v1/conversations/nope/messages", {"content": "hi"}, token)
    assert write[0] == 403 and write[1]["error"]["code"] == "forbidden", "narrowed to its scope"
    assert (await get(client, path, token))[0] == 403, "no profile scope either"
    _, listed = await get(client, path, session)
    assert listed["data"][0]["last_used_at"] is not None

    wide = await post(client, path, {"name": "x", "scopes": ["users:manage"]}, session)
    assert wide[0] == 422 and wide[1]["error"]["code"] == "invalid_scopes"
    unknown = await post(client, path, {"name": "x", "scopes": ["root"]}, session)
    assert unknown[0] == 422
    empty = await post(client, path, {"name": "x", "scopes": []}, session)
    assert empty[0] == 422

    _, profile_token, _ = await post(client, path, {"name": "p", "scopes": ["profile"]}, session)
    minted = await post(client, path, {"name": "y", "scopes": ["profile"]}, profile_token["token"])
    assert minted[0] == 403 and minted[1]["error"]["code"] == "token_cannot_create_tokens"
    cli = await post(client, path, {"name": "y", "scopes": ["profile"]}, ADMIN_TOKEN)
    assert cli[0] == 403 and cli[1]["error"]["code"] == "not_a_user"

    mine = f"{path}/{made['id']}"
    assert (await client.delete(mine, headers=bearer(other))).status == 404, "not theirs"
    assert (await client.delete(mine, headers=bearer(session))).status == 204
    assert (await get(client, "/api/v1/conversations", token))[0] == 401
    assert (await client.delete(mine, headers=bearer(session))).status == 404
    _, listed = await get(client, path, session)
    assert [t["id"] for t in listed["data"]] == [profile_token["id"]]
    actions = await audit_actions(hub)
    assert actions.count("api_token.created") == 2 and "api_token.revoked" in actions
