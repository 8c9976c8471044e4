"""Logging in: passwords, lockout, refresh rotation and reuse, logout, expiry, MFA, invitations
and the ``hub create-admin`` command."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pyotp
import pytest
from argon2 import PasswordHasher

from hub.app import Hub
from hub.auth.access import AccessTokens
from hub.config import Config
from tests.api.auth_support import (
    PASSWORD,
    Client,
    audit_actions,
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
    """The per-address login rate limit would answer 429 before the account lockout does."""
    return hub_config.replace(rate_limit_login=10_000.0, trusted_proxies="127.0.0.1")


async def test_login_answers_tokens_that_work(hub: Hub, client: Client) -> None:
    user_id = await make_user(hub, email="Ana@Example.com", role="supervisor")
    status, data, _ = await login(client, email="ana@EXAMPLE.com")
    assert status == 200, data
    assert data["status"] == "authenticated" and data["token_type"] == "Bearer"
    assert data["user"] == {
        "id": user_id,
        "email": "ana@example.com",
        "name": "Ana",
        "role": "supervisor",
        "account_id": hub.account_id,
    }
    assert data["refresh_token"] and data["expires_in"] == 15 * 60
    status, profile = await get(client, "/api/v1/profile", data["access_token"])
    assert status == 200 and profile["id"] == user_id
    row = await hub.pool.fetchrow(
        "SELECT actor_type, actor_id, account_id FROM audit_log WHERE action = 'auth.login'"
    )
    assert row is not None and tuple(row) == ("user", user_id, hub.account_id)


async def test_an_outdated_hash_is_upgraded_at_login(hub: Hub, client: Client) -> None:
    user_id = await make_user(hub)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await hub.pool.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, weak)
    await logged_in(client)
    stored = await hub.pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    assert stored != weak and stored.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(stored)
    await logged_in(client)


async def test_every_wrong_credential_gets_the_same_answer(hub: Hub, client: Client) -> None:
    await make_user(hub)
    await make_user(hub, email="gone@example.com")
    await hub.pool.execute("UPDATE users SET disabled_at = now() WHERE email = 'gone@example.com'")
    async with hub.pool.acquire() as conn:  # invited, no password yet
        await conn.execute(
            """INSERT INTO users (id, account_id, email, role, invite_hash, invite_expires_at)
               VALUES ('invited', $1, 'new@example.com', 'agent', '\\x01', now() + '1 day')""",
            hub.account_id,
        )
    answers = [
        await login(client, password="wrong password!"),
        await login(client, email="nobody@elsewhere.example"),
        await login(client, email="gone@example.com"),
        await login(client, email="new@example.com"),
    ]
    assert [a[0] for a in answers] == [401] * 4
    assert all(a[1] == answers[0][1] for a in answers), "no answer tells which emails exist"
    assert answers[0][1]["error"]["code"] == "invalid_credentials"
    rows = await hub.pool.fetch(
        "SELECT account_id, actor_type, details, audit_log::text AS text FROM audit_log "
        "WHERE action = 'auth.login_failed' ORDER BY id"
    )
    assert [r["details"]["reason"] for r in rows] == [
        "wrong_password",
        "unknown_email",
        "disabled",
        "no_password",
    ]
    unknown = rows[1]
    assert unknown["account_id"] is None and unknown["actor_type"] == "anonymous"
    assert unknown["details"] == {"reason": "unknown_email", "email_domain": "elsewhere.example"}
    assert not any("wrong password" in r["text"] or PASSWORD in r["text"] for r in rows)
    assert "nobody@" not in unknown["text"]


EXPIRE = "UPDATE auth_throttle SET locked_until = now() - interval '1 second'"


def from_address(address: str) -> dict[str, str]:
    """The test client is a trusted proxy (``hub_config``), so this sets the client address."""
    return {"X-Forwarded-For": address}


async def login_from(
    client: Client, address: str, email: str = "ana@example.com", password: str = PASSWORD
) -> tuple[int, Any, dict[str, str]]:
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": password},
        headers=from_address(address),
    )
    return response.status, await response.json(), dict(response.headers)


async def test_five_failures_lock_the_user_for_a_doubling_time(hub: Hub, client: Client) -> None:
    await make_user(hub)
    for _ in range(5):
        status, data, _ = await login(client, password="not the password")
        assert status == 401, data
    status, data, headers = await login(client)  # the right password: not even looked at
    assert status == 429 and data["error"]["code"] == "account_locked"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert "auth.locked" in await audit_actions(hub)

    await hub.pool.execute(EXPIRE)
    status, _, _ = await login(client, password="still not it")
    assert status == 401
    status, _, headers = await login(client)
    assert status == 429 and 60 < int(headers["Retry-After"]) <= 120, "the second lock doubles"

    await hub.pool.execute(EXPIRE)
    status, _, _ = await login(client)
    assert status == 200
    for _ in range(4):  # success cleared the count: four more failures do not lock
        assert (await login(client, password="not the password"))[0] == 401
    assert (await login(client))[0] == 200


async def test_an_address_no_user_has_locks_the_same_way(hub: Hub, client: Client) -> None:
    await make_user(hub)
    answers = {}
    for email in ("ana@example.com", "nobody@example.com"):
        for _ in range(5):
            status, data, _ = await login(client, email=email, password="not the password")
            assert status == 401, data
        answers[email] = await login(client, email=email, password="not the password")
    (real, real_data, real_headers), (unknown, unknown_data, unknown_headers) = answers.values()
    assert real == unknown == 429
    assert real_data == unknown_data
    assert real_data["error"]["code"] == "account_locked"
    assert abs(int(real_headers["Retry-After"]) - int(unknown_headers["Retry-After"])) <= 1
    leaked = "SELECT count(*) FROM audit_log WHERE audit_log::text LIKE '%nobody@%'"
    assert await hub.pool.fetchval(leaked) == 0
    stored = "SELECT count(*) FROM auth_throttle WHERE key::text LIKE '%nobody%'"
    assert await hub.pool.fetchval(stored) == 0, "kept only as hashes"


async def test_disabled_and_invited_emails_lock_like_any_other(hub: Hub, client: Client) -> None:
    """Five wrong passwords lock every email the same way, whether it belongs to an active, a
    disabled or an invited user or to nobody: the lockout does not tell them apart."""
    await make_user(hub)
    await make_user(hub, email="gone@example.com")
    await hub.pool.execute("UPDATE users SET disabled_at = now() WHERE email = 'gone@example.com'")
    await hub.pool.execute(
        """INSERT INTO users (id, account_id, email, role, invite_hash, invite_expires_at)
           VALUES ('invited', $1, 'new@example.com', 'agent', '\\x01', now() + '1 day')""",
        hub.account_id,
    )
    emails = ("ana@example.com", "nobody@example.com", "gone@example.com", "new@example.com")
    sixth = {}
    for email in emails:
        for _ in range(5):
            status, data, _ = await login(client, email=email, password="not the password")
            assert status == 401 and data["error"]["code"] == "invalid_credentials", (email, data)
        sixth[email] = await login(client, email=email, password=PASSWORD)
    assert [sixth[e][0] for e in emails] == [429] * 4, sixth
    assert all(sixth[e][1] == sixth[emails[0]][1] for e in emails), "the same body for all"
    waits = [int(sixth[e][2]["Retry-After"]) for e in emails]
    assert max(waits) - min(waits) <= 1


async def test_an_attacker_elsewhere_cannot_lock_the_owner_out(hub: Hub, client: Client) -> None:
    await make_user(hub, role="administrator")
    attacker, owner = "203.0.113.5", "198.51.100.7"
    answers = [(await login_from(client, attacker, password="guess"))[0] for _ in range(12)]
    assert answers[:5] == [401] * 5 and answers[5:] == [429] * 7, answers
    status, data, _ = await login_from(client, attacker)  # even the right password, from there
    assert status == 429 and data["error"]["code"] == "account_locked"
    status, data, _ = await login_from(client, owner)
    assert status == 200 and data["status"] == "authenticated", data
    await hub.pool.execute(EXPIRE)  # the attacker's lock runs out; the count stays
    assert (await login_from(client, attacker, password="guess"))[0] == 401
    status, _, headers = await login_from(client, attacker, password="guess")
    assert status == 429 and 60 < int(headers["Retry-After"]) <= 120, "the attacker's lock doubles"
    assert (await login_from(client, owner))[0] == 200, "the owner's success changed nothing there"


async def test_one_address_trying_many_emails_is_held(hub: Hub, client: Client) -> None:
    """Password spraying: one address, a different email each time; the pair limit never
    triggers, the address's own limit does, and only for that address."""
    await make_user(hub)
    sprayer = "203.0.113.9"
    answers = [
        (await login_from(client, sprayer, email=f"user{n}@example.com", password="guess"))[0]
        for n in range(25)
    ]
    assert 429 in answers and answers[:20] == [401] * 20, answers
    assert (await login_from(client, sprayer))[0] == 429, "the address is held for every email"
    assert (await login_from(client, "198.51.100.7"))[0] == 200


async def test_many_addresses_hold_an_email_except_where_its_owner_logs_in(
    hub: Hub, client: Client
) -> None:
    """The slower limit from everywhere: 50 failures from 50 addresses hold the email for any
    new address, but not at the address its owner logged in from before."""
    await make_user(hub)
    owner = "198.51.100.7"
    assert (await login_from(client, owner))[0] == 200
    answers = [
        (await login_from(client, f"203.0.113.{n}", password="guess"))[0] for n in range(1, 55)
    ]
    # the 50th failure, or the 51st if a little was forgiven (50 an hour) while they arrived
    assert answers[:50] == [401] * 50 and set(answers[51:]) == {429}, answers
    assert (await login_from(client, "192.0.2.200"))[0] == 429, "a new address is held"
    assert (await login_from(client, owner))[0] == 200, "the owner's own address is not"


async def test_refresh_rotates_and_reuse_ends_the_session(hub: Hub, client: Client) -> None:
    await make_user(hub)
    first = await logged_in(client)
    status, second, _ = await post(
        client, "/api/v1/auth/refresh", {"refresh_token": first["refresh_token"]}
    )
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    assert (await get(client, "/api/v1/profile", second["access_token"]))[0] == 200  # cached

    status, data, _ = await post(
        client, "/api/v1/auth/refresh", {"refresh_token": first["refresh_token"]}
    )
    assert status == 401 and data["error"]["code"] == "refresh_token_reused"
    status, data, _ = await post(
        client, "/api/v1/auth/refresh", {"refresh_token": second["refresh_token"]}
    )
    assert status == 401, "the newest token of the family stops working too"
    status, data = await get(client, "/api/v1/profile", second["access_token"])
    assert status == 401 and data["error"]["code"] == "invalid_token"
    assert "auth.refresh_reuse" in await audit_actions(hub)
    reason = await hub.pool.fetchval("SELECT revoked_reason FROM auth_sessions")
    assert reason == "refresh_reuse"

    unknown = await post(client, "/api/v1/auth/refresh", {"refresh_token": "made-up"})
    assert unknown[0] == 401 and unknown[1]["error"]["code"] == "invalid_token"


async def test_logout_ends_the_session(hub: Hub, client: Client) -> None:
    await make_user(hub)
    session = await logged_in(client)
    token = session["access_token"]
    assert (await get(client, "/api/v1/profile", token))[0] == 200
    status, _, _ = await post(client, "/api/v1/auth/logout", None, token)
    assert status == 204
    assert (await get(client, "/api/v1/profile", token))[0] == 401
    refresh = await post(
        client, "/api/v1/auth/refresh", {"refresh_token": session["refresh_token"]}
    )
    assert refresh[0] == 401
    status, data, _ = await post(client, "/api/v1/auth/logout", None, ADMIN_TOKEN)
    assert status == 400 and data["error"]["code"] == "not_a_session"
    assert "auth.logout" in await audit_actions(hub)


async def test_an_expired_access_token_is_refused(hub: Hub, client: Client) -> None:
    user_id = await make_user(hub)
    session = await logged_in(client)
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    expired = AccessTokens(hub.box.derive("access-token"), -10)
    token, _ = expired.issue(user_id, hub.account_id, claims["sid"])
    status, data = await get(client, "/api/v1/profile", token)
    assert status == 401 and data["error"]["code"] == "token_expired"


async def _enable_mfa(client: Client, access_token: str) -> tuple[pyotp.TOTP, list[str]]:
    status, enrolment, _ = await post(client, "/api/v1/profile/mfa/enrol", None, access_token)
    assert status == 200, enrolment
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(enrolment["secret"])
    status, data, _ = await post(
        client, "/api/v1/profile/mfa/confirm", {"code": wrong_code(totp)}, access_token
    )
    assert status == 422 and data["error"]["code"] == "invalid_code"
    status, data, _ = await post(
        client, "/api/v1/profile/mfa/confirm", {"code": totp.now()}, access_token
    )
    assert status == 200, data
    return totp, data["backup_codes"]


async def test_mfa_enrol_confirm_and_log_in_with_codes(hub: Hub, client: Client) -> None:
    await make_user(hub)
    session = await logged_in(client)
    totp, backup_codes = await _enable_mfa(client, session["access_token"])
    assert len(backup_codes) == 10 and len(set(backup_codes)) == 10
    status, profile = await get(client, "/api/v1/profile", session["access_token"])
    assert profile["mfa_enabled"] is True and profile["backup_codes_left"] == 10
    sealed = await hub.pool.fetchval("SELECT mfa_secret FROM users")
    assert totp.secret.encode() not in sealed, "the secret is stored encrypted"

    status, challenge, _ = await login(client)
    assert status == 200 and challenge["status"] == "mfa_required"
    assert challenge["mfa_required"] is True and "access_token" not in challenge
    mfa_token = challenge["mfa_token"]
    assert (await get(client, "/api/v1/profile", mfa_token))[0] == 401, "not an access token"

    count = "SELECT coalesce(sum(score), 0) FROM auth_throttle"
    before = await hub.pool.fetchval(count)
    status, data, _ = await post(
        client, "/api/v1/auth/mfa", {"mfa_token": mfa_token, "code": wrong_code(totp)}
    )
    assert status == 401 and data["error"]["code"] == "invalid_code"
    added = await hub.pool.fetchval(count) - before  # less the little forgiven meanwhile
    assert 2.9 < added <= 3, "counts for the user and address, the address and the user"

    code = next_code(totp)
    status, data, _ = await post(client, "/api/v1/auth/mfa", {"mfa_token": mfa_token, "code": code})
    assert status == 200 and data["status"] == "authenticated", data
    assert (await get(client, "/api/v1/profile", data["access_token"]))[0] == 200
    again = await post(client, "/api/v1/auth/mfa", {"mfa_token": mfa_token, "code": code})
    assert again[0] == 401 and again[1]["error"]["code"] == "invalid_mfa_token", "single use"

    _, challenge, _ = await login(client)
    replay = await post(
        client, "/api/v1/auth/mfa", {"mfa_token": challenge["mfa_token"], "code": code}
    )
    assert replay[0] == 401 and replay[1]["error"]["code"] == "invalid_code", "no replays"

    used = {"mfa_token": challenge["mfa_token"], "backup_code": backup_codes[0].upper()}
    status, data, _ = await post(client, "/api/v1/auth/mfa", used)
    assert status == 200, data
    _, challenge, _ = await login(client)
    used["mfa_token"] = challenge["mfa_token"]
    status, data, _ = await post(client, "/api/v1/auth/mfa", used)
    assert status == 401, "a backup code works once"

    methods = await hub.pool.fetch(
        "SELECT details->>'method' AS m FROM audit_log WHERE action = 'auth.login' ORDER BY id"
    )
    assert [r["m"] for r in methods] == ["password", "password+totp", "password+backup_code"]
    actions = await audit_actions(hub)
    assert {"mfa.enrolment_started", "mfa.enabled"} <= set(actions)


async def test_wrong_codes_elsewhere_do_not_lock_the_owner_out(hub: Hub, client: Client) -> None:
    """An attacker who has the password guesses codes from one address: that address is held
    (even with a right code), the owner logs in from another with password and code."""
    await make_user(hub)
    session = await logged_in(client)
    totp, _ = await _enable_mfa(client, session["access_token"])
    attacker, owner = "203.0.113.5", "198.51.100.7"

    async def mfa_from(address: str, token: str, code: str) -> tuple[int, Any]:
        response = await client.post(
            "/api/v1/auth/mfa",
            json={"mfa_token": token, "code": code},
            headers=from_address(address),
        )
        return response.status, await response.json()

    _, challenge, _ = await login_from(client, attacker)
    token = challenge["mfa_token"]
    answers = [(await mfa_from(attacker, token, wrong_code(totp)))[0] for _ in range(7)]
    assert answers == [401] * 5 + [429] * 2, answers
    assert (await mfa_from(attacker, token, next_code(totp)))[0] == 429
    _, challenge, _ = await login_from(client, attacker)  # a new login buys no more guesses
    assert (await mfa_from(attacker, challenge["mfa_token"], wrong_code(totp)))[0] == 429

    status, challenge, _ = await login_from(client, owner)
    assert status == 200 and challenge["status"] == "mfa_required", challenge
    status, data = await mfa_from(owner, challenge["mfa_token"], next_code(totp))
    assert status == 200 and data["status"] == "authenticated", data


async def test_an_account_requiring_mfa_forces_enrolment(hub: Hub, client: Client) -> None:
    await make_user(hub)
    await hub.pool.execute("UPDATE accounts SET mfa_required = true")
    status, challenge, _ = await login(client)
    assert status == 200 and challenge["status"] == "mfa_setup_required"
    assert challenge["mfa_setup_required"] is True
    token = challenge["mfa_token"]
    status, data, _ = await post(client, "/api/v1/auth/mfa", {"mfa_token": token, "code": "1"})
    assert status == 401 and data["error"]["code"] == "invalid_mfa_token"
    status, data, _ = await post(
        client, "/api/v1/auth/mfa/confirm", {"mfa_token": token, "code": "123456"}
    )
    assert status == 409 and data["error"]["code"] == "mfa_not_enrolled"

    status, enrolment, _ = await post(client, "/api/v1/auth/mfa/enrol", {"mfa_token": token})
    assert status == 200, enrolment
    totp = pyotp.TOTP(enrolment["secret"])
    status, data, _ = await post(
        client, "/api/v1/auth/mfa/confirm", {"mfa_token": token, "code": wrong_code(totp)}
    )
    assert status == 401 and data["error"]["code"] == "invalid_code"
    status, done, _ = await post(
        client, "/api/v1/auth/mfa/confirm", {"mfa_token": token, "code": totp.now()}
    )
    assert status == 200 and done["status"] == "authenticated", done
    assert len(done["backup_codes"]) == 10
    assert (await get(client, "/api/v1/profile", done["access_token"]))[0] == 200
    reuse = await post(client, "/api/v1/auth/mfa/enrol", {"mfa_token": token})
    assert reuse[0] == 401, "the enrolment token finished its session"

    status, data, _ = await post(
        client,
        "/api/v1/profile/mfa/disable",
        {"password": PASSWORD, "backup_code": done["backup_codes"][0]},
        done["access_token"],
    )
    assert status == 409 and data["error"]["code"] == "mfa_required_by_account"
    _, challenge, _ = await login(client)
    assert challenge["status"] == "mfa_required", "from now on a code is asked for"


async def test_accepting_an_invitation_sets_the_password_and_logs_in(
    hub: Hub, client: Client
) -> None:
    invite = "invitation-token-for-nimal"
    await hub.pool.execute(
        """INSERT INTO users (id, account_id, email, role, invite_hash, invite_expires_at)
           VALUES ('nimal', $1, 'nimal@example.com', 'agent', $2, now() + interval '7 days'),
                  ('late', $1, 'late@example.com', 'agent', $3, now() - interval '1 second')""",
        hub.account_id,
        hashlib.sha256(invite.encode()).digest(),
        hashlib.sha256(b"expired-invitation").digest(),
    )
    path = "/api/v1/auth/accept-invite"
    short = await post(client, path, {"token": invite, "password": "short"})
    assert short[0] == 422
    same = await post(client, path, {"token": invite, "password": "Nimal@Example.com"})
    assert same[0] == 422 and same[1]["error"]["code"] == "weak_password", "not the email"
    status, data, _ = await post(
        client, path, {"token": invite, "password": PASSWORD, "name": " Nimal "}
    )
    assert status == 200 and data["status"] == "authenticated", data
    assert data["user"]["name"] == "Nimal" and data["user"]["id"] == "nimal"
    used = await post(client, path, {"token": invite, "password": PASSWORD})
    assert used[0] == 401 and used[1]["error"]["code"] == "invalid_invitation"
    late = await post(client, path, {"token": "expired-invitation", "password": PASSWORD})
    assert late[0] == 401
    await logged_in(client, email="nimal@example.com")
    assert "user.invite_accepted" in await audit_actions(hub)


def _create_admin(
    env: dict[str, str], email: str, password: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "create-admin", "--email", email, *extra],
        env=env,
        input=password + "\n",
        text=True,
        capture_output=True,
        check=False,
        timeout=120,
    )


async def test_create_admin_command(hub: Hub, client: Client, db_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "DATABASE_URL": db_dsn}
    made = _create_admin(env, "Boss@Example.com", PASSWORD, "--name", "Boss")
    assert made.returncode == 0, made.stderr
    assert PASSWORD not in made.stdout + made.stderr
    session = await logged_in(client, email="boss@example.com")
    assert session["user"]["role"] == "administrator" and session["user"]["name"] == "Boss"
    assert session["user"]["account_id"] == hub.account_id

    again = _create_admin(env, "boss@example.com", PASSWORD)
    assert again.returncode == 2 and "already exists" in again.stderr
    weak = _create_admin(env, "other@example.com", "short")
    assert weak.returncode == 2 and "at least 10 characters" in weak.stderr
    elsewhere = _create_admin(env, "x@example.com", PASSWORD, "--account", "no-such")
    assert elsewhere.returncode == 2 and "no account" in elsewhere.stderr
    row = await hub.pool.fetchrow(
        "SELECT actor_type, details FROM audit_log WHERE action = 'user.created'"
    )
    assert row is not None and row["actor_type"] == "system"
    assert row["details"] == {"role": "administrator", "via": "cli"}
