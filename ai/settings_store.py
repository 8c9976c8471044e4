"""What the REST side of the AI part writes and reads (in the caller's transaction): an account's
intent labels with their examples, the agents' use of suggestions, a conversation's last
analysis. The gateway calls these; the consumer reads the same tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from hub.actions.accounts import audit_object
from hub.audit import Origin
from hub.authz import Principal
from hub.store.db import Conn


class Intent(msgspec.Struct):
    label: str
    examples: list[str]
    updated_at: datetime


async def list_intents(conn: Conn, account_id: str) -> list[Intent]:
    rows = await conn.fetch(
        "SELECT label, examples, updated_at FROM ai_intents WHERE account_id = $1 ORDER BY label",
        account_id,
    )
    return [Intent(r["label"], list(r["examples"]), r["updated_at"]) for r in rows]


async def set_intent(
    conn: Conn, principal: Principal, label: str, examples: list[str], origin: Origin
) -> Intent:
    row = await conn.fetchrow(
        """INSERT INTO ai_intents (account_id, label, examples) VALUES ($1, $2, $3)
           ON CONFLICT (account_id, label) DO UPDATE SET examples = EXCLUDED.examples,
                  updated_at = now()
           RETURNING label, examples, updated_at""",
        principal.account_id,
        label,
        examples,
    )
    assert row is not None
    await audit_object(
        conn,
        "ai_intent",
        principal.account_id,
        label,
        "ai_intent.saved",
        principal,
        origin,
        examples=len(examples),
    )
    return Intent(row["label"], list(row["examples"]), row["updated_at"])


async def delete_intent(conn: Conn, principal: Principal, label: str, origin: Origin) -> bool:
    done = await conn.fetchval(
        "DELETE FROM ai_intents WHERE account_id = $1 AND label = $2 RETURNING 1",
        principal.account_id,
        label,
    )
    if done:
        await audit_object(
            conn, "ai_intent", principal.account_id, label, "ai_intent.deleted", principal, origin
        )
    return bool(done)


async def record_use(conn: Conn, account_id: str, ref: str) -> None:
    """An agent used suggestion ``ref``: it ranks a little higher from now on."""
    await conn.execute(
        """INSERT INTO ai_suggestion_uses AS u (account_id, ref, uses) VALUES ($1, $2, 1)
           ON CONFLICT (account_id, ref) DO UPDATE SET uses = u.uses + 1""",
        account_id,
        ref,
    )


async def last_analysis(conn: Conn, conversation_id: str) -> dict[str, Any] | None:
    raw = await conn.fetchval(
        "SELECT last_analysis::text FROM ai_conversations WHERE conversation_id = $1",
        conversation_id,
    )
    if raw is None:
        return None
    found: dict[str, Any] = msgspec.json.decode(raw)
    return found
