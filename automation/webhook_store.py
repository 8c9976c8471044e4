"""Outgoing webhook subscriptions and their deliveries: the rows, and the admin actions on them.

A subscription's secret is sealed with the hub's key ring (``hub.secrets``) like channel
credentials, shown once when made. Every change is written to the audit log in the same
transaction.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from automation.addresses import AddressRefused, check_destination
from automation.signing import new_secret
from hub.actions.accounts import Refused, audit_object
from hub.audit import Origin
from hub.authz import Principal
from hub.events import registered_types
from hub.events.types import CONTACTS, CONVERSATIONS
from hub.ids import new_id
from hub.secrets import SecretBox
from hub.store.db import Conn
from hub.store.reads import decode_id_cursor, encode_cursor

#: ``*`` subscribes to every event type
ALL = "*"
STATES = ("pending", "delivered", "dead")


@dataclasses.dataclass(frozen=True)
class Subscription:
    id: str
    name: str
    url: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


_COLUMNS = "id, name, url, event_types, enabled, created_at, updated_at"


def _subscription(row: Any) -> Subscription:
    return Subscription(**{k: row[k] for k in _COLUMNS.split(", ")})


def check_event_types(event_types: list[str]) -> list[str]:
    """Types of the topics the recorder follows: the ``webhooks`` topic's raw provider payloads
    are the archive's alone, never sent on."""
    known = {t for t, cls in registered_types().items() if cls.TOPIC in (CONVERSATIONS, CONTACTS)}
    unknown = sorted({t for t in event_types if t != ALL and t not in known})
    if unknown:
        raise Refused(
            "invalid", "unknown_event_types", "these event types do not exist", {"types": unknown}
        )
    if not event_types:
        raise Refused("invalid", "no_event_types", "subscribe to at least one event type")
    return sorted(set(event_types))


async def _check_url(url: str, allow_private: bool) -> None:
    try:
        await check_destination(url, allow_private)
    except AddressRefused as exc:
        raise Refused("invalid", "url_refused", str(exc)) from exc


async def create_subscription(
    conn: Conn,
    box: SecretBox,
    *,
    account_id: str,
    name: str,
    url: str,
    event_types: list[str],
    allow_private: bool,
    actor: Principal,
    origin: Origin,
) -> tuple[Subscription, str]:
    """The new subscription and its secret (in clear: the only time it is shown)."""
    types = check_event_types(event_types)
    await _check_url(url, allow_private)
    secret = new_secret()
    row = await conn.fetchrow(
        f"""INSERT INTO webhook_subscriptions (id, account_id, name, url, event_types, secret)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",
        new_id(),
        account_id,
        name,
        url,
        types,
        box.seal_bytes(secret.encode()),
    )
    made = _subscription(row)
    await audit_object(
        conn, "webhook", account_id, made.id, "webhook.created", actor, origin, url=url,
        event_types=types,
    )  # fmt: skip
    return made, secret


async def get_subscription(conn: Conn, account_id: str, webhook_id: str) -> Subscription:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM webhook_subscriptions WHERE id = $1 AND account_id = $2",
        webhook_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such webhook")
    return _subscription(row)


async def list_subscriptions(
    conn: Conn, account_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Subscription], str | None]:
    after = decode_id_cursor(cursor)
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM webhook_subscriptions
             WHERE account_id = $1 AND ($2::text IS NULL OR id > $2)
             ORDER BY id LIMIT $3""",
        account_id,
        after,
        limit + 1,
    )
    items = [_subscription(r) for r in rows[:limit]]
    return items, encode_cursor([items[-1].id]) if len(rows) > limit else None


async def update_subscription(
    conn: Conn,
    *,
    account_id: str,
    webhook_id: str,
    allow_private: bool,
    actor: Principal,
    origin: Origin,
    name: str | None = None,
    url: str | None = None,
    event_types: list[str] | None = None,
    enabled: bool | None = None,
) -> Subscription:
    current = await get_subscription(conn, account_id, webhook_id)
    if url is not None:
        await _check_url(url, allow_private)
    types = check_event_types(event_types) if event_types is not None else None
    row = await conn.fetchrow(
        f"""UPDATE webhook_subscriptions
               SET name = coalesce($3, name), url = coalesce($4, url),
                   event_types = coalesce($5, event_types), enabled = coalesce($6, enabled),
                   updated_at = now()
             WHERE id = $1 AND account_id = $2 RETURNING {_COLUMNS}""",
        webhook_id,
        account_id,
        name,
        url,
        types,
        enabled,
    )
    after = _subscription(row)
    changed = [
        f for f in ("name", "url", "event_types", "enabled")
        if getattr(current, f) != getattr(after, f)
    ]  # fmt: skip
    if changed:
        await audit_object(
            conn, "webhook", account_id, webhook_id, "webhook.updated", actor, origin,
            changed=changed,
        )  # fmt: skip
    return after


async def delete_subscription(
    conn: Conn, *, account_id: str, webhook_id: str, actor: Principal, origin: Origin
) -> None:
    url = await conn.fetchval(
        "DELETE FROM webhook_subscriptions WHERE id = $1 AND account_id = $2 RETURNING url",
        webhook_id,
        account_id,
    )
    if url is None:
        raise Refused("not_found", "not_found", "no such webhook")
    await audit_object(
        conn, "webhook", account_id, webhook_id, "webhook.deleted", actor, origin, url=url
    )


@dataclasses.dataclass(frozen=True)
class Delivery:
    id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


_DELIVERY = (
    "id, event_id, event_type, state, attempts, next_attempt_at, last_status, last_error, "
    "created_at, delivered_at"
)


def _delivery(row: Any) -> Delivery:
    values = {k: row[k] for k in _DELIVERY.split(", ")}
    if values["state"] != "pending":
        values["next_attempt_at"] = None
    return Delivery(**values)


async def list_deliveries(
    conn: Conn,
    account_id: str,
    webhook_id: str,
    *,
    state: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Delivery], str | None]:
    """Newest first; ``state`` ``dead`` is the dead-letter list."""
    await get_subscription(conn, account_id, webhook_id)
    before = decode_id_cursor(cursor)
    rows = await conn.fetch(
        f"""SELECT {_DELIVERY} FROM webhook_deliveries
             WHERE subscription_id = $1 AND account_id = $2
               AND ($3::text IS NULL OR state = $3) AND ($4::text IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5""",
        webhook_id,
        account_id,
        state,
        before,
        limit + 1,
    )
    items = [_delivery(r) for r in rows[:limit]]
    return items, encode_cursor([items[-1].id]) if len(rows) > limit else None


async def redeliver(
    conn: Conn,
    *,
    account_id: str,
    webhook_id: str,
    delivery_id: str,
    actor: Principal,
    origin: Origin,
) -> Delivery:
    """A dead (or delivered) delivery goes out once more, with a fresh round of retries; the
    same delivery id, so a receiver that already has it can drop it."""
    row = await conn.fetchrow(
        f"""UPDATE webhook_deliveries
               SET state = 'pending', attempts = 0, next_attempt_at = now(), leased_until = NULL,
                   created_at = now(), delivered_at = NULL
             WHERE id = $1 AND subscription_id = $2 AND account_id = $3 AND state <> 'pending'
         RETURNING {_DELIVERY}""",
        delivery_id,
        webhook_id,
        account_id,
    )
    if row is None:
        exists = await conn.fetchval(
            """SELECT 1 FROM webhook_deliveries
                WHERE id = $1 AND subscription_id = $2 AND account_id = $3""",
            delivery_id,
            webhook_id,
            account_id,
        )
        if exists is None:
            raise Refused("not_found", "not_found", "no such delivery")
        raise Refused("conflict", "already_pending", "this delivery is still being tried")
    await audit_object(
        conn, "webhook", account_id, webhook_id, "webhook.redelivered", actor, origin,
        delivery_id=delivery_id,
    )  # fmt: skip
    return _delivery(row)


#: an owed delivery: account, subscription, dedupe key, event id, type, order key, seq, body
Owed = tuple[str, str, str, str, str, str, int, bytes]


async def record_deliveries(conn: Conn, rows: list[Owed]) -> int:
    """Insert owed deliveries ``(account, subscription, dedupe key, event id, type, order key,
    seq, body)``; repeats (same subscription and key) are ignored. The count inserted."""
    if not rows:
        return 0
    inserted = await conn.fetch(
        """INSERT INTO webhook_deliveries (id, account_id, subscription_id, dedupe_key, event_id,
                                           event_type, order_key, seq, body)
           SELECT x.id, x.a, x.s, x.k, x.e, x.t, x.o, x.q, x.b
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::bigint[], $9::bytea[]) AS x(id, a, s, k, e, t, o, q, b)
           ON CONFLICT (subscription_id, dedupe_key) DO NOTHING RETURNING id""",
        [new_id() for _ in rows],
        *(list(col) for col in zip(*rows, strict=True)),
    )
    return len(inserted)
