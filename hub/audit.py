"""The audit log: who did what to which object, when and from where.

Entries are written with :func:`record` on the same connection, inside the same transaction, as
the change they describe, so the log never shows a change that did not happen or misses one that
did. Details never hold secrets (credential values are reduced to the names of the keys changed).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hub.authz import Principal
from hub.ids import new_id
from hub.store.db import Conn


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where a request came from, for the log."""

    client_address: str | None = None
    user_agent: str | None = None


def actor_of(principal: Principal | None) -> tuple[str, str | None]:
    if principal is None:
        return "anonymous", None
    if principal.user_id is not None:
        return "user", principal.user_id
    if principal.token_id is not None:
        return "api_token", principal.token_id
    return "system", None


async def record(
    conn: Conn,
    *,
    account_id: str | None,
    actor: Principal | None,
    action: str,
    object_type: str,
    object_id: str | None,
    origin: Origin = Origin(),
    details: dict[str, Any] | None = None,
    actor_override: tuple[str, str | None] | None = None,
) -> str:
    """Append one entry; ``actor_override`` names the actor when there is no principal yet
    (a login is performed by the user it logs in)."""
    actor_type, actor_id = actor_override or actor_of(actor)
    entry_id = new_id()
    await conn.execute(
        """INSERT INTO audit_log (id, account_id, actor_type, actor_id, action, object_type,
                                  object_id, client_address, user_agent, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        entry_id,
        account_id,
        actor_type,
        actor_id,
        action,
        object_type,
        object_id,
        origin.client_address,
        origin.user_agent,
        details or {},
    )
    return entry_id
