"""Custom attribute definitions: an account names the attributes its contacts carry and their
types, and every write to a contact's attributes is checked against them.

An attribute with no definition is still accepted as free-form JSON (what contacts held before
definitions existed); a defined one must have its type, else the write is a 422 that names it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from hub import audit
from hub.actions.contacts import ContactRefused
from hub.authz import Principal
from hub.store.db import Conn

TYPES = ("text", "number", "date", "list", "checkbox", "link")


@dataclasses.dataclass(frozen=True)
class Definition:
    key: str
    label: str
    type: str
    options: tuple[str, ...] = ()


async def definitions(conn: Conn | asyncpg.Pool[Any], account_id: str) -> dict[str, Definition]:
    rows = await conn.fetch(
        """SELECT key, label, type, options FROM contact_attribute_definitions
            WHERE account_id = $1 ORDER BY key""",
        account_id,
    )
    return {
        r["key"]: Definition(r["key"], r["label"], r["type"], tuple(r["options"])) for r in rows
    }


def _fits(definition: Definition, value: Any) -> bool:
    kind = definition.type
    if kind == "text":
        return isinstance(value, str)
    if kind == "number":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "checkbox":
        return isinstance(value, bool)
    if kind == "date":
        if not isinstance(value, str) or len(value) != 10:
            return False
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return True
    if kind == "list":
        return isinstance(value, str) and value in definition.options
    if kind == "link":
        if not isinstance(value, str):
            return False
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.netloc)
    return False


def _expected(definition: Definition) -> str:
    if definition.type == "list":
        return "one of " + ", ".join(definition.options)
    if definition.type == "date":
        return "a date (YYYY-MM-DD)"
    if definition.type == "link":
        return "an http(s) link"
    return {"text": "text", "number": "a number", "checkbox": "true or false"}[definition.type]


def check(defined: Mapping[str, Definition], attributes: Mapping[str, Any]) -> None:
    """Refuse (422 ``invalid_attribute``, naming it) the first defined attribute whose value
    does not have its type; ``None`` (removing the attribute) always passes."""
    for key, value in attributes.items():
        definition = defined.get(key)
        if definition is None or value is None or _fits(definition, value):
            continue
        raise ContactRefused(
            "invalid_attribute",
            f"attribute {key!r} must be {_expected(definition)}",
            {"attribute": key, "type": definition.type},
        )


async def check_attributes(conn: Conn, account_id: str, attributes: Mapping[str, Any]) -> None:
    if attributes:
        check(await definitions(conn, account_id), attributes)


def filter_value(definition: Definition, raw: str) -> Any:
    """A query string's value as the JSON value a contact of this type stores; 422 when it cannot
    be one."""
    value: Any = raw
    if definition.type == "number":
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        value = int(number) if number.is_integer() else number
    elif definition.type == "checkbox":
        value = {"true": True, "false": False}.get(raw.lower(), raw)
    if not _fits(definition, value):
        raise ContactRefused(
            "invalid_attribute",
            f"attribute {definition.key!r} must be {_expected(definition)}",
            {"attribute": definition.key, "type": definition.type},
        )
    return value


async def define(
    conn: Conn,
    *,
    principal: Principal,
    key: str,
    label: str,
    type: str,
    options: list[str],
    origin: audit.Origin,
) -> Definition:
    if type not in TYPES:
        raise ContactRefused("invalid_type", f"type must be one of {', '.join(TYPES)}")
    if (type == "list") != bool(options):
        raise ContactRefused("invalid_options", "options are for, and required by, list attributes")
    inserted = await conn.fetchval(
        """INSERT INTO contact_attribute_definitions (account_id, key, label, type, options)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING key""",
        principal.account_id,
        key,
        label,
        type,
        options,
    )
    if inserted is None:
        raise ContactRefused("conflict", f"attribute {key!r} is already defined")
    await audit.record(
        conn,
        account_id=principal.account_id,
        actor=principal,
        action="contact_attribute.defined",
        object_type="contact_attribute",
        object_id=None,
        origin=origin,
        details={"key": key, "type": type, "options": options},
    )
    return Definition(key, label, type, tuple(options))


async def undefine(conn: Conn, *, principal: Principal, key: str, origin: audit.Origin) -> None:
    """Remove a definition; contacts keep their values, now free-form."""
    gone = await conn.fetchval(
        """DELETE FROM contact_attribute_definitions WHERE account_id = $1 AND key = $2
           RETURNING key""",
        principal.account_id,
        key,
    )
    if gone is None:
        raise ContactRefused("not_found", "no such attribute")
    await audit.record(
        conn,
        account_id=principal.account_id,
        actor=principal,
        action="contact_attribute.removed",
        object_type="contact_attribute",
        object_id=None,
        origin=origin,
        details={"key": key},
    )
