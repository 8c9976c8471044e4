"""The first run: a hub with no users is set up once, from the console, by whoever holds the
setup token.

The token is derived from the hub's secret key and the default account's id, so every gateway
knows it without storing it, ``hub serve`` can print it and ``hub setup-token`` can print it
again, and nobody on the network who lacks the key can claim the hub. Setting up takes an
advisory lock and checks, inside the transaction, that there are still no users: of two
concurrent attempts exactly one creates the administrator, the other finds the setup done.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from hub import audit
from hub.actions.accounts import Refused
from hub.actions.setup import ensure_default_account
from hub.audit import Origin
from hub.auth.users import UserError, create_user
from hub.secrets import SecretBox
from hub.store.db import Conn

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('hub:first-run'))"
#: which request field each refusal of the first administrator concerns
_FIELD = {"weak_password": "password", "invalid_email": "email", "email_taken": "email"}


def setup_token(box: SecretBox, account_id: str) -> str:
    """The one-time setup token of the hub whose default account is ``account_id``."""
    mac = hmac.new(box.derive("first-run"), account_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def token_matches(box: SecretBox, account_id: str, given: str) -> bool:
    return hmac.compare_digest(setup_token(box, account_id).encode(), given.encode())


async def setup_open(conn: Conn) -> bool:
    """True while the hub has no user at all (the setup page and endpoints exist only then)."""
    return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)")


async def setup_account(conn: Conn) -> str | None:
    """The account the first run sets up, or None when the setup is done."""
    if not await setup_open(conn):
        return None
    return await ensure_default_account(conn)


async def complete_first_run(
    conn: Conn,
    *,
    account_id: str,
    account_name: str,
    time_zone: str,
    email: str,
    name: str,
    password: str,
    origin: Origin,
) -> str:
    """Name the account and create its first administrator; answers the user's id. Runs in the
    caller's transaction; refused (``not_found``) when another setup won meanwhile."""
    await conn.execute(_LOCK)
    if not await setup_open(conn):
        raise Refused("not_found", "not_found", "the hub is set up already")
    try:
        user_id = await create_user(conn, account_id, email, name, "administrator", password)
    except UserError as exc:
        field = _FIELD.get(exc.code)
        raise Refused(
            "invalid", exc.code, exc.message, {"field": field} if field else None
        ) from exc
    await conn.execute(
        "UPDATE accounts SET name = $2, time_zone = $3, updated_at = now() WHERE id = $1",
        account_id,
        account_name,
        time_zone,
    )
    await audit.record(
        conn,
        account_id=account_id,
        actor=None,
        action="hub.first_run",
        object_type="user",
        object_id=user_id,
        origin=origin,
        details={"role": "administrator"},
        actor_override=("user", user_id),
    )
    return user_id
