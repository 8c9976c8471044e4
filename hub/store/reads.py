"""Read queries for the gateway: inboxes, tokens, conversations and messages, scoped by account."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import orjson

from hub.authz import Principal
from hub.contracts.channel import InboxContext
from hub.secrets import SecretBox
from hub.store import values as store_values
from hub.store.db import Conn


async def load_inbox(
    conn: Conn | asyncpg.Pool[Any], box: SecretBox, inbox_id: str
) -> InboxContext | None:
    row = await conn.fetchrow(
        """SELECT id, account_id, channel, name, reopen_policy, settings, secrets,
                  disabled_at IS NULL AS enabled
             FROM inboxes WHERE id = $1""",
        inbox_id,
    )
    if row is None:
        return None
    return InboxContext(
        id=row["id"],
        account_id=row["account_id"],
        channel=row["channel"],
        name=row["name"],
        reopen_policy=row["reopen_policy"],
        settings=row["settings"],
        secrets=box.open(row["secrets"]) if row["secrets"] else {},
        enabled=row["enabled"],
    )


class BadCursor(ValueError):
    """A cursor this hub did not make (or made for another list or sort): 400 ``invalid_cursor``."""


#: a cursor holds a few short values; anything longer was not made here
_CURSOR_MAX = 512
_CURSOR_TEXT_MAX = 64


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values, default=str)).decode().rstrip("=")


def decode_id_cursor(cursor: str | None) -> str | None:
    """The id a one-value cursor holds (``None``: from the start)."""
    if not cursor:
        return None
    value = decode_cursor(cursor, 1)[0]
    if not isinstance(value, str):
        raise BadCursor("cursor is not valid")
    return value


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The ``size`` values a cursor holds. Every cursor of the hub is decoded here, so nothing a
    client crafts reaches a query: only short texts without NUL or lone surrogates, integers a
    ``bigint`` holds, and nulls."""
    if len(cursor) > _CURSOR_MAX:
        raise BadCursor("cursor is not valid")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadCursor("cursor is not valid") from exc
    if not isinstance(decoded, list) or len(decoded) != size:
        raise BadCursor("cursor is not valid")
    for value in decoded:
        try:
            if isinstance(value, str):
                store_values.text(value, "cursor", _CURSOR_TEXT_MAX)
            elif isinstance(value, int) and not isinstance(value, bool):
                store_values.bigint(value, "cursor", minimum=-store_values.BIGINT_MAX)
            elif value is not None:
                raise store_values.Unstorable("cursor holds a value of the wrong kind")
        except store_values.Unstorable as exc:
            raise BadCursor("cursor is not valid") from exc
    return decoded


CONVERSATION_COLUMNS = """c.id, c.inbox_id, c.contact_id, ct.name AS contact_name, c.status,
    c.assignee_id, c.team_id, c.labels, c.priority, c.snoozed_until, c.messages_count,
    c.last_message_at, c.last_activity_at, c.created_at, c.muted,
    c.attributes"""

# the contact's messages after the agent's read position ($2: the agent)
_UNREAD = """(SELECT count(*) FROM messages m
               WHERE m.conversation_id = c.id AND m.direction = 'inbound'
                 AND m.id > coalesce((SELECT r.last_read_message_id FROM conversation_reads r
                                       WHERE r.agent_id = $2 AND r.conversation_id = c.id),
                                     '')) AS unread_count"""

# what the list shows of the newest message; when the contact last wrote (a channel's reply
# window, e.g. WhatsApp's 24 hours, runs from it: the provider's time if it was given, as
# hub.actions.messages counts it) and that message's id, so that a console can tell whether an
# event's message is in the unread count it read. Each walks messages_conversation backwards;
# scalar subqueries, not a lateral join, so that they run only for the rows of the page (a join
# would run for every row a filter without an ordered index sorts). The inbound time and id are
# two walks of the same few index entries: one subquery returning both as a record cost the hub
# more CPU per list request to decode (3.3-3.5 ms against 3.1, bench.api.run A/B, 2026-12-05)
_LATEST = """(SELECT left(m.content, 140) FROM messages m
               WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1) AS last_message_preview,
             (SELECT least(m.sent_at, m.created_at) FROM messages m
               WHERE m.conversation_id = c.id AND m.direction = 'inbound'
               ORDER BY m.id DESC LIMIT 1) AS last_inbound_at,
             (SELECT m.id FROM messages m
               WHERE m.conversation_id = c.id AND m.direction = 'inbound'
               ORDER BY m.id DESC LIMIT 1) AS last_inbound_message_id"""

Sort = Literal["last_activity", "created", "priority"]
# per sort: the columns it orders by (all descending, then the id) and their kinds in the cursor
_SORTS: dict[str, tuple[tuple[str, str], ...]] = {
    "last_activity": (("last_activity_at", "ts"),),
    "created": (("created_at", "ts"),),
    "priority": (("priority_rank", "int"), ("last_activity_at", "ts")),
}


async def account_inbox_ids(pool: asyncpg.Pool[Any], account_id: str) -> list[str]:
    rows = await pool.fetch("SELECT id FROM inboxes WHERE account_id = $1 ORDER BY id", account_id)
    return [r["id"] for r in rows]


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """``[low, high)`` holding exactly the strings that start with ``prefix`` in bytewise
    (``text_pattern_ops``, UTF-8) order, where code point order is byte order: the upper bound is
    the prefix with its last character incremented (``None``: no upper bound)."""
    head = prefix
    while head:
        code = ord(head[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are not characters PostgreSQL stores
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix, head[:-1] + chr(code)
        head = head[:-1]
    return prefix, None


def _cursor_values(cursor: str, sort: str) -> list[Any]:
    """The sort key and id a cursor holds, checked against the sort it was made for."""
    keys = _SORTS[sort]
    values = decode_cursor(cursor, len(keys) + 2)
    if values[0] != sort or not isinstance(values[-1], str):
        raise BadCursor("cursor is not valid for this sort")
    out: list[Any] = []
    for (_, kind), value in zip(keys, values[1:-1], strict=True):
        if kind == "int":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 4:
                raise BadCursor("cursor is not valid")
            out.append(value)
            continue
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("no time zone")
            out.append(moment.astimezone(UTC))  # as the driver would, but here a 400
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadCursor("cursor is not valid") from exc
    return [*out, values[-1]]


async def list_conversations(
    pool: asyncpg.Pool[Any],
    account_id: str,
    *,
    agent_id: str,
    inboxes: frozenset[str] | None,
    status: str | None = None,
    inbox_id: str | None = None,
    limit: int,
    cursor: str | None,
    assignee_id: str | None = None,
    contact_id: str | None = None,
    team_id: str | None = None,
    label: str | None = None,
    priority: str | None = None,
    unassigned: bool = False,
    mine: bool = False,
    name_prefix: str | None = None,
    sort: Sort = "last_activity",
) -> tuple[list[dict[str, Any]], str | None]:
    """One page in ``sort`` order (descending, then by id); the cursor is the sort key and id of
    the last row served. ``unread_count``: the contact's messages after ``agent_id``'s read
    position. The SQL holds only the filters asked for, so each combination gets a plan that
    uses the index for its filter and order."""
    keys = _SORTS[sort]
    args: list[Any] = [account_id, agent_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where = ["c.account_id = $1"]
    if inboxes is not None:
        where.append(f"c.inbox_id = ANY({arg(sorted(inboxes))}::text[])")
    equal = {
        "status": status,
        "inbox_id": inbox_id,
        "contact_id": contact_id,
        "assignee_id": agent_id if mine else assignee_id,
        "team_id": team_id,
        "priority": priority,
    }
    where += [f"c.{column} = {arg(value)}" for column, value in equal.items() if value is not None]
    if mine and assignee_id is not None:  # both asked: only rows that are both
        where.append(f"c.assignee_id = {arg(assignee_id)}")
    if unassigned:
        where.append("c.assignee_id IS NULL")
    if label is not None:
        where.append(f"c.labels @> ARRAY[{arg(label)}::text]")
    if name_prefix is not None:
        lowered: str = await pool.fetchval("SELECT lower($1::text)", name_prefix)
        low, high = prefix_bounds(lowered)
        where.append(f"lower(ct.name) ~>=~ {arg(low)}")
        if high is not None:
            where.append(f"lower(ct.name) ~<~ {arg(high)}")
    if cursor:
        values = _cursor_values(cursor, sort)
        columns = ", ".join(f"c.{name}" for name, _ in keys)
        bounds = ", ".join(arg(v) for v in values)
        where.append(f"({columns}, c.id) < ({bounds})")
    order = ", ".join(f"c.{name} DESC" for name, _ in keys)
    rows = await pool.fetch(
        f"""SELECT {CONVERSATION_COLUMNS}, c.priority_rank, {_UNREAD}, {_LATEST}
              FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
             WHERE {" AND ".join(where)}
             ORDER BY {order}, c.id DESC
             LIMIT {arg(limit + 1)}""",
        *args,
    )
    items = [dict(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([sort, *(last[name] for name, _ in keys), last["id"]])
    for item in items:
        del item["priority_rank"]
    return items, next_cursor


async def get_conversation(
    conn: Conn | asyncpg.Pool[Any], principal: Principal, conversation_id: str
) -> dict[str, Any] | None:
    """One conversation as the list shows it, or ``None`` if the caller may not see it."""
    row = await conn.fetchrow(
        f"""SELECT {CONVERSATION_COLUMNS}, {_UNREAD}, {_LATEST}
              FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
             WHERE c.id = $1 AND c.account_id = $3""",
        conversation_id,
        principal.agent_id,
        principal.account_id,
    )
    if row is None or not principal.sees(row["inbox_id"]):
        return None
    return dict(row)


async def conversation_exists(
    pool: asyncpg.Pool[Any], principal: Principal, conversation_id: str
) -> bool:
    """Whether the conversation exists and the caller may see it."""
    inbox_id: str | None = await pool.fetchval(
        "SELECT inbox_id FROM conversations WHERE id = $1 AND account_id = $2",
        conversation_id,
        principal.account_id,
    )
    return inbox_id is not None and principal.sees(inbox_id)


async def list_messages(
    pool: asyncpg.Pool[Any],
    account_id: str,
    conversation_id: str,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Oldest first (timeline order); the cursor is the id of the last message served."""
    after_id = decode_id_cursor(cursor)
    rows = await pool.fetch(
        """SELECT id, conversation_id, inbox_id, direction, private, sender_type, sender_id,
                  content, content_type, attachments, provider_message_id, status, error_code,
                  error_message, sent_at, created_at, email, edited_at, edits, language,
                  sentiment, intents
             FROM messages
            WHERE conversation_id = $1 AND account_id = $2
              AND ($3::text IS NULL OR id > $3)
            ORDER BY id
            LIMIT $4""",
        conversation_id,
        account_id,
        after_id,
        limit + 1,
    )
    items = [dict(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1]["id"]]) if len(rows) > limit else None
    return items, next_cursor


async def list_conversation_events(
    pool: asyncpg.Pool[Any],
    account_id: str,
    conversation_id: str,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The journal's conversation events (not messages: those are the messages list), oldest
    first; the cursor is the id of the last event served."""
    after_id = decode_id_cursor(cursor)
    rows = await pool.fetch(
        """SELECT id, type, occurred_at, event::jsonb AS event FROM event_log
            WHERE conversation_id = $1 AND account_id = $2
              AND (type LIKE 'conversation.%' OR type LIKE 'call.%')
              AND ($3::text IS NULL OR id > $3)
            ORDER BY id
            LIMIT $4""",
        conversation_id,
        account_id,
        after_id,
        limit + 1,
    )
    items = [
        {
            "id": r["id"],
            "type": r["type"],
            "occurred_at": r["occurred_at"],
            "actor": r["event"].get("actor"),
            "payload": r["event"].get("payload") or {},
        }
        for r in rows[:limit]
    ]
    next_cursor = encode_cursor([items[-1]["id"]]) if len(rows) > limit else None
    return items, next_cursor


#: unresolved conversations per inbox of ``{inboxes}`` (a text[] expression), one row per inbox
#: that has any: the counters' columns, as :func:`inbox_counters` returns them
INBOX_COUNTERS_SQL = """SELECT inbox_id,
              coalesce(sum(n) FILTER (WHERE status = 'open'), 0)::bigint AS open,
              coalesce(sum(n) FILTER (WHERE status = 'pending'), 0)::bigint AS pending,
              coalesce(sum(n) FILTER (WHERE status = 'snoozed'), 0)::bigint AS snoozed,
              coalesce(sum(n) FILTER (WHERE status = 'open' AND assignee_id = ''), 0)::bigint
                  AS unassigned,
              coalesce(jsonb_object_agg(assignee_id, n)
                           FILTER (WHERE status = 'open' AND assignee_id <> ''),
                       '{{}}') AS assigned
         FROM conversation_counts
        WHERE inbox_id = ANY({inboxes}) AND n <> 0
        GROUP BY inbox_id"""

#: the counter columns of :data:`INBOX_COUNTERS_SQL`
COUNTER_KEYS = ("open", "pending", "snoozed", "unassigned", "assigned")


def no_counters(inbox_id: str) -> dict[str, Any]:
    """The counters of an inbox with no unresolved conversation."""
    return {
        "inbox_id": inbox_id,
        "open": 0,
        "pending": 0,
        "snoozed": 0,
        "unassigned": 0,
        "assigned": {},
    }


async def inbox_counters(
    conn: Conn | asyncpg.Pool[Any], inbox_ids: Iterable[str]
) -> dict[str, Any]:
    """Unresolved conversations per inbox by status, and open ones unassigned and per assignee.
    Read from ``conversation_counts``, which triggers keep in step with ``conversations`` (a
    count over the conversations themselves costs milliseconds per request at 100,000)."""
    inboxes = sorted(set(inbox_ids))
    if not inboxes:
        return {}
    rows = await conn.fetch(INBOX_COUNTERS_SQL.format(inboxes="$1::text[]"), inboxes)
    counters: dict[str, dict[str, Any]] = {inbox: no_counters(inbox) for inbox in inboxes}
    for row in rows:
        counters[row["inbox_id"]] = dict(row)
    return counters


CONTACT_COLUMNS = """c.id, c.name, c.attributes, c.company_id, c.created_at, c.updated_at,
    coalesce((SELECT jsonb_agg(jsonb_build_object('channel', i.channel, 'address', i.address)
                               ORDER BY i.channel, i.address)
                FROM contact_identities i WHERE i.contact_id = c.id), '[]'::jsonb) AS identities"""


async def contact_scope(
    conn: Conn | asyncpg.Pool[Any], account_id: str, inboxes: frozenset[str] | None
) -> frozenset[str] | None:
    """The inboxes whose conversations' contacts a caller seeing ``inboxes`` may see: ``None``
    (every contact) unless the account limits contacts to inboxes (``contacts_by_inbox``) and
    the caller is limited to some inboxes."""
    if inboxes is None:
        return None
    limited = await conn.fetchval(
        "SELECT contacts_by_inbox FROM accounts WHERE id = $1", account_id
    )
    return inboxes if limited else None


_IN_SCOPE = """EXISTS (SELECT 1 FROM conversations v
                        WHERE v.account_id = c.account_id AND v.contact_id = c.id
                          AND v.inbox_id = ANY(${n}::text[]))"""


async def list_contacts(
    pool: asyncpg.Pool[Any],
    account_id: str,
    *,
    search: str | None,
    limit: int,
    cursor: str | None,
    scope: frozenset[str] | None = None,
    attribute: tuple[str, Any] | None = None,
    company_id: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; ``search`` matches a name prefix or an address prefix (an exact address
    too), case-insensitively; ``attribute`` (key, JSON value) an attribute's exact value;
    ``company_id`` a company's contacts. Contacts merged into another one are left out; with
    ``scope`` (:func:`contact_scope`), so are contacts without a conversation in those inboxes."""
    after_id = decode_id_cursor(cursor)
    args: list[Any] = [account_id, limit + 1]
    where = ["c.account_id = $1", "c.merged_into IS NULL"]
    if attribute is not None:
        args.append({attribute[0]: attribute[1]})
        where.append(f"c.attributes @> ${len(args)}::jsonb")
    if company_id is not None:
        args.append(company_id)
        where.append(f"c.company_id = ${len(args)}")
    if scope is not None:
        args.append(sorted(scope))
        where.append(_IN_SCOPE.format(n=len(args)))
    if after_id is not None:
        args.append(after_id)
        where.append(f"c.id < ${len(args)}")
    if search is not None:
        lowered: str = await pool.fetchval("SELECT lower($1::text)", search)
        low, high = prefix_bounds(lowered)
        args.append(low)
        name = [f"lower(n.name) ~>=~ ${len(args)}"]
        address = [f"lower(i.address) ~>=~ ${len(args)}"]
        if high is not None:
            args.append(high)
            name.append(f"lower(n.name) ~<~ ${len(args)}")
            address.append(f"lower(i.address) ~<~ ${len(args)}")
        where.append(
            f"""c.id IN (SELECT n.id FROM contacts n
                          WHERE n.account_id = $1 AND {" AND ".join(name)}
                         UNION
                         SELECT i.contact_id FROM contact_identities i
                          WHERE i.account_id = $1 AND {" AND ".join(address)})"""
        )
    rows = await pool.fetch(
        f"""SELECT {CONTACT_COLUMNS} FROM contacts c
             WHERE {" AND ".join(where)}
             ORDER BY c.id DESC LIMIT $2""",
        *args,
    )
    items = [dict(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1]["id"]]) if len(rows) > limit else None
    return items, next_cursor


async def get_contact(
    conn: Conn | asyncpg.Pool[Any],
    account_id: str,
    contact_id: str,
    scope: frozenset[str] | None = None,
) -> dict[str, Any] | None:
    """``scope``: as for :func:`list_contacts`; a contact out of it is ``None``."""
    limit = "" if scope is None else " AND " + _IN_SCOPE.format(n=3)
    row = await conn.fetchrow(
        f"SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.id = $1 AND c.account_id = $2{limit}",
        contact_id,
        account_id,
        *([] if scope is None else [sorted(scope)]),
    )
    return None if row is None else dict(row)
