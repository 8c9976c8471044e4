"""Read queries for the admin API: the account, users, teams, inboxes, labels, canned responses
and the audit log, always within one account.

Lists are pages in id order (ids are ULIDs, so creation order; the audit log newest first); the
cursor is the last id served, so any string is a position and no cursor is ever malformed.
Nothing here returns a password or invitation hash, an MFA secret or a credential in clear:
inbox credentials leave masked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from hub.secrets import SecretBox
from hub.store.db import Conn

Db: TypeAlias = "Conn | asyncpg.Pool[Any]"
Row = dict[str, Any]
MASK = "••••"


def _page(
    rows: Sequence[asyncpg.Record], limit: int, convert: Callable[[asyncpg.Record], Row] = dict
) -> tuple[list[Row], str | None]:
    """``rows`` were fetched with ``LIMIT limit + 1``: one more means there is a next page."""
    next_cursor: str | None = rows[limit - 1]["id"] if len(rows) > limit else None
    return [convert(r) for r in rows[:limit]], next_cursor


def like_pattern(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (backslash is the default escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_account(db: Db, account_id: str) -> Row | None:
    row = await db.fetchrow(
        """SELECT id, name, time_zone, business_hours, mfa_required, contacts_by_inbox,
                  created_at, updated_at
             FROM accounts WHERE id = $1""",
        account_id,
    )
    return dict(row) if row is not None else None


_USER = """SELECT id, email, name, role, availability, mfa_enabled, sip_uri, created_at,
                  updated_at,
                  CASE WHEN disabled_at IS NOT NULL THEN 'disabled'
                       WHEN password_hash IS NULL THEN 'invited'
                       ELSE 'active' END AS status
             FROM users"""


async def get_user(db: Db, account_id: str, user_id: str) -> Row | None:
    row = await db.fetchrow(f"{_USER} WHERE id = $1 AND account_id = $2", user_id, account_id)
    return dict(row) if row is not None else None


async def list_users(
    db: Db, account_id: str, *, role: str | None, q: str | None, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """``q`` matches anywhere in the name or the email address, ignoring case."""
    rows = await db.fetch(
        f"""{_USER}
             WHERE account_id = $1 AND ($2::text IS NULL OR id > $2)
               AND ($3::text IS NULL OR role = $3)
               AND ($4::text IS NULL OR name ILIKE $4 OR email ILIKE $4)
             ORDER BY id LIMIT $5""",
        account_id,
        cursor,
        role,
        None if q is None else f"%{like_pattern(q)}%",
        limit + 1,
    )
    return _page(rows, limit)


_TEAM = """SELECT t.id, t.name, t.description, t.created_at, t.updated_at,
                  ARRAY(SELECT user_id FROM team_members WHERE team_id = t.id ORDER BY user_id)
                      AS member_ids,
                  ARRAY(SELECT inbox_id FROM team_inboxes WHERE team_id = t.id ORDER BY inbox_id)
                      AS inbox_ids
             FROM teams t"""


async def get_team(db: Db, account_id: str, team_id: str) -> Row | None:
    row = await db.fetchrow(f"{_TEAM} WHERE t.id = $1 AND t.account_id = $2", team_id, account_id)
    return dict(row) if row is not None else None


async def list_teams(
    db: Db, account_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    rows = await db.fetch(
        f"""{_TEAM} WHERE t.account_id = $1 AND ($2::text IS NULL OR t.id > $2)
             ORDER BY t.id LIMIT $3""",
        account_id,
        cursor,
        limit + 1,
    )
    return _page(rows, limit)


def mask_secret(value: object) -> str:
    """Enough to recognise a credential (its last four characters, when it is long enough for
    them not to give much of it away), never enough to use it."""
    text = str(value)
    return MASK + text[-4:] if len(text) >= 12 else MASK


_INBOX = """SELECT i.id, i.channel, i.name, i.reopen_policy, i.settings, i.secrets,
                   i.created_at, i.updated_at, i.disabled_at, i.disabled_at IS NULL AS enabled,
                   ARRAY(SELECT user_id FROM inbox_members WHERE inbox_id = i.id ORDER BY user_id)
                       AS member_ids,
                   ARRAY(SELECT team_id FROM team_inboxes WHERE inbox_id = i.id ORDER BY team_id)
                       AS team_ids,
                   (SELECT jsonb_build_object(
                               'state', CASE WHEN m.error IS NOT NULL THEN 'error'
                                             WHEN m.checked_at IS NULL THEN 'connecting'
                                             ELSE 'connected' END,
                               'folder', m.folder, 'error', m.error, 'error_at', m.error_at,
                               'checked_at', m.checked_at, 'last_uid', m.last_uid)
                      FROM email_mailboxes m WHERE m.inbox_id = i.id) AS mailbox
              FROM inboxes i"""


def _inbox(row: asyncpg.Record, box: SecretBox, with_credentials: bool) -> Row:
    item = dict(row)
    sealed = item.pop("secrets")
    stored = box.open(sealed) if sealed and with_credentials else {}
    item["credentials"] = {k: mask_secret(v) for k, v in sorted(stored.items())}
    item["webhook_path"] = f"/webhooks/{item['channel']}/{item['id']}"
    return item


async def get_inbox(
    db: Db, box: SecretBox, account_id: str, inbox_id: str, *, with_credentials: bool
) -> Row | None:
    """``with_credentials``: include the credentials (masked); otherwise an empty map."""
    row = await db.fetchrow(f"{_INBOX} WHERE i.id = $1 AND i.account_id = $2", inbox_id, account_id)
    if row is None:
        return None
    item = _inbox(row, box, with_credentials)
    item["conversation_count"] = await db.fetchval(
        "SELECT count(*) FROM conversations WHERE inbox_id = $1", inbox_id
    )
    return item


async def list_inboxes(
    db: Db,
    box: SecretBox,
    account_id: str,
    *,
    visible: frozenset[str] | None,
    with_credentials: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[Row], str | None]:
    """Only the ``visible`` inboxes (``None``: all of the account)."""
    rows = await db.fetch(
        f"""{_INBOX} WHERE i.account_id = $1 AND ($2::text IS NULL OR i.id > $2)
              AND ($3::text[] IS NULL OR i.id = ANY($3::text[]))
            ORDER BY i.id LIMIT $4""",
        account_id,
        cursor,
        None if visible is None else sorted(visible),
        limit + 1,
    )
    return _page(rows, limit, lambda r: _inbox(r, box, with_credentials))


_LABEL = "SELECT id, name, color, description, created_at FROM labels"


async def get_label(db: Db, account_id: str, label_id: str) -> Row | None:
    row = await db.fetchrow(f"{_LABEL} WHERE id = $1 AND account_id = $2", label_id, account_id)
    return dict(row) if row is not None else None


async def list_labels(
    db: Db, account_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    rows = await db.fetch(
        f"{_LABEL} WHERE account_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
        account_id,
        cursor,
        limit + 1,
    )
    return _page(rows, limit)


_CANNED = "SELECT id, short_code, content, created_at, updated_at FROM canned_responses"


async def get_canned(db: Db, account_id: str, canned_id: str) -> Row | None:
    row = await db.fetchrow(f"{_CANNED} WHERE id = $1 AND account_id = $2", canned_id, account_id)
    return dict(row) if row is not None else None


async def list_canned(
    db: Db, account_id: str, *, q: str | None, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """``q``: short codes starting with it, or content containing it (ignoring case)."""
    pattern = None if q is None else like_pattern(q)
    rows = await db.fetch(
        f"""{_CANNED} WHERE account_id = $1 AND ($2::text IS NULL OR id > $2)
              AND ($3::text IS NULL OR short_code LIKE lower($3) || '%'
                   OR content ILIKE '%' || $3 || '%')
            ORDER BY id LIMIT $4""",
        account_id,
        cursor,
        pattern,
        limit + 1,
    )
    return _page(rows, limit)


async def list_audit(
    db: Db,
    account_id: str,
    *,
    actor_id: str | None,
    action: str | None,
    object_type: str | None,
    object_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Row], str | None]:
    """Newest first; ``since`` inclusive, ``until`` exclusive."""
    rows = await db.fetch(
        """SELECT id, actor_type, actor_id, action, object_type, object_id, client_address,
                  user_agent, details, created_at
             FROM audit_log
            WHERE account_id = $1 AND ($2::text IS NULL OR id < $2)
              AND ($3::text IS NULL OR actor_id = $3)
              AND ($4::text IS NULL OR action = $4)
              AND ($5::text IS NULL OR object_type = $5)
              AND ($6::text IS NULL OR object_id = $6)
              AND ($7::timestamptz IS NULL OR created_at >= $7)
              AND ($8::timestamptz IS NULL OR created_at < $8)
            ORDER BY id DESC LIMIT $9""",
        account_id,
        cursor,
        actor_id,
        action,
        object_type,
        object_id,
        since,
        until,
        limit + 1,
    )
    return _page(rows, limit)
