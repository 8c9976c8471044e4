"""Inboxes from the admin API: create, change (credentials re-encrypted), delete, members.

Credentials are stored sealed with the hub's key (``hub.box``). Only their key names ever reach
the audit log; the caller sees the values once, in the reply to the create.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hub.actions.accounts import Refused, audit_object, known_ids
from hub.actions.setup import CreatedInbox, SetupError, create_inbox
from hub.audit import Origin
from hub.authz import Principal
from hub.contracts.channel import SettingsInvalid
from hub.contracts.registry import get_channel
from hub.secrets import SecretBox
from hub.store.db import Conn


async def add_inbox(
    conn: Conn,
    box: SecretBox,
    *,
    account_id: str,
    channel: str,
    name: str,
    reopen_policy: str,
    settings: dict[str, Any],
    credentials: dict[str, str],
    actor: Principal,
    origin: Origin,
) -> CreatedInbox:
    """Settings the channel finds wrong, missing required credentials or an unknown channel are
    refused; an API-channel inbox gets a generated signing secret unless one is given."""
    _check_settings(channel, settings)
    await _name_free(conn, account_id, name)
    try:
        made = await create_inbox(
            conn,
            box,
            account_id=account_id,
            channel=channel,
            name=name,
            reopen_policy=reopen_policy,
            secrets_in=credentials,
            settings=settings,
        )
    except SetupError as exc:
        raise Refused("invalid", "invalid_inbox", str(exc)) from exc
    await audit_object(
        conn,
        "inbox",
        account_id,
        made.id,
        "inbox.created",
        actor,
        origin,
        channel=channel,
        name=name,
        credential_keys=sorted(made.secrets),
    )
    return made


async def _name_free(conn: Conn, account_id: str, name: str, inbox_id: str = "") -> None:
    """Two inboxes of an account never share a name (ignoring case): agents tell them apart by
    it. The lock serialises concurrent creates and renames in the account."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('hub:inbox-names:' || $1))", account_id
    )
    taken = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM inboxes WHERE account_id = $1 AND lower(name) = lower($2)"
        " AND id <> $3)",
        account_id,
        name,
        inbox_id,
    )
    if taken:
        raise Refused(
            "conflict", "name_taken", f"an inbox is named {name!r} already", {"field": "name"}
        )


def _check_settings(channel: str, settings: Mapping[str, Any]) -> None:
    adapter = get_channel(channel)
    if adapter is None:
        raise Refused("invalid", "invalid_inbox", f"unknown channel {channel!r}")
    try:
        adapter.check_settings(settings)
    except SettingsInvalid as exc:
        field = {"field": f"settings.{exc.field}"} if exc.field else None
        raise Refused("invalid", "invalid_settings", str(exc), field) from exc


def _merged(current: Mapping[str, Any], given: Mapping[str, str | None]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


async def update_inbox(
    conn: Conn,
    box: SecretBox,
    *,
    account_id: str,
    inbox_id: str,
    actor: Principal,
    origin: Origin,
    name: str | None = None,
    reopen_policy: str | None = None,
    settings: dict[str, Any] | None = None,
    credentials: Mapping[str, str | None] | None = None,
) -> None:
    """``credentials`` are merged into the stored ones (``None`` removes a key); the channel's
    required keys must remain."""
    row = await conn.fetchrow(
        """SELECT channel, name, reopen_policy, settings, secrets FROM inboxes
            WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE""",
        inbox_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such inbox")
    given = {"name": name, "reopen_policy": reopen_policy, "settings": settings}
    changed = [k for k, v in given.items() if v is not None and v != row[k]]
    if name is not None and "name" in changed:
        await _name_free(conn, account_id, name, inbox_id)
    if settings is not None and "settings" in changed:
        _check_settings(row["channel"], settings)
    sealed: bytes = row["secrets"]
    changed_keys: list[str] = []
    if credentials is not None:
        current = box.open(row["secrets"]) if row["secrets"] else {}
        merged = _merged(current, credentials)
        adapter = get_channel(row["channel"])
        required = adapter.manifest.required_secrets if adapter is not None else ()
        missing = [k for k in required if not merged.get(k)]
        if missing:
            raise Refused(
                "invalid",
                "missing_credentials",
                f"a {row['channel']} inbox needs these credentials: {', '.join(missing)}",
                {"missing": missing},
            )
        changed_keys = sorted(k for k in {*current, *merged} if current.get(k) != merged.get(k))
        if changed_keys:
            sealed = box.seal(merged)
    if not changed and not changed_keys:
        return
    await conn.execute(
        """UPDATE inboxes SET name = $2, reopen_policy = $3, settings = $4, secrets = $5,
                  updated_at = now()
            WHERE id = $1""",
        inbox_id,
        name if "name" in changed else row["name"],
        reopen_policy if "reopen_policy" in changed else row["reopen_policy"],
        settings if "settings" in changed else row["settings"],
        sealed,
    )

    async def audit(action: str, details: dict[str, Any]) -> None:
        await audit_object(conn, "inbox", account_id, inbox_id, action, actor, origin, **details)

    if changed:
        await audit("inbox.updated", {"changed": changed})
    if changed_keys:  # names only: a value, even masked, never goes into the log
        await audit("inbox.credentials_changed", {"keys": changed_keys})


async def set_inbox_enabled(
    conn: Conn,
    *,
    account_id: str,
    inbox_id: str,
    enabled: bool,
    actor: Principal,
    origin: Origin,
) -> bool:
    """Disable or enable an inbox; ``False`` when it already was so (nothing written, nothing
    audited). Disabling keeps everything it holds: only new input and output stop."""
    row = await conn.fetchrow(
        """SELECT disabled_at IS NULL AS enabled FROM inboxes
            WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE""",
        inbox_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such inbox")
    if row["enabled"] == enabled:
        return False
    await conn.execute(
        """UPDATE inboxes SET disabled_at = CASE WHEN $2 THEN NULL ELSE now() END,
                  updated_at = now()
            WHERE id = $1""",
        inbox_id,
        enabled,
    )
    action = "inbox.enabled" if enabled else "inbox.disabled"
    await audit_object(conn, "inbox", account_id, inbox_id, action, actor, origin)
    return True


async def delete_inbox(
    conn: Conn, *, account_id: str, inbox_id: str, actor: Principal, origin: Origin
) -> None:
    """Only an inbox without conversations: its history is never deleted as a side effect.
    The row lock makes a conversation arriving meanwhile wait, then fail its reference."""
    row = await conn.fetchrow(
        "SELECT channel, name FROM inboxes WHERE id = $1 AND account_id = $2 FOR UPDATE",
        inbox_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such inbox")
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM conversations WHERE inbox_id = $1)", inbox_id
    ):
        raise Refused(
            "conflict", "inbox_has_conversations", "this inbox has conversations; it is kept"
        )
    await conn.execute("DELETE FROM inboxes WHERE id = $1", inbox_id)
    await audit_object(
        conn,
        "inbox",
        account_id,
        inbox_id,
        "inbox.deleted",
        actor,
        origin,
        channel=row["channel"],
        name=row["name"],
    )


async def set_inbox_members(
    conn: Conn,
    *,
    account_id: str,
    inbox_id: str,
    user_ids: Sequence[str],
    actor: Principal,
    origin: Origin,
) -> None:
    """Replace the users who are members of the inbox (and so see it)."""
    found = await conn.fetchval(
        "SELECT 1 FROM inboxes WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE",
        inbox_id,
        account_id,
    )
    if found is None:
        raise Refused("not_found", "not_found", "no such inbox")
    wanted = await known_ids(conn, "users", account_id, user_ids)
    rows = await conn.fetch("SELECT user_id FROM inbox_members WHERE inbox_id = $1", inbox_id)
    current = {r["user_id"] for r in rows}
    added, removed = sorted(wanted - current), sorted(current - wanted)
    if not added and not removed:
        return
    await conn.execute(
        "DELETE FROM inbox_members WHERE inbox_id = $1 AND user_id = ANY($2::text[])",
        inbox_id,
        removed,
    )
    await conn.executemany(
        "INSERT INTO inbox_members (inbox_id, user_id) VALUES ($1, $2)",
        [(inbox_id, u) for u in added],
    )
    await audit_object(
        conn,
        "inbox",
        account_id,
        inbox_id,
        "inbox.members_changed",
        actor,
        origin,
        added=added,
        removed=removed,
    )
