"""Rules as rows: saving (every reference checked: agents, teams, labels, canned responses,
webhooks of the account), listing, and turning a rule off with a visible reason when it breaks
later. Admin changes are written to the audit log in the same transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from automation.rule_model import (
    MAX_WAIT_MINUTES,
    TRIGGERS,
    Action,
    Condition,
    RuleInvalid,
    check_condition,
)
from hub.actions.accounts import Refused, audit_object
from hub.audit import Origin, record
from hub.authz import Principal
from hub.contracts.channel import Template
from hub.contracts.registry import get_channel
from hub.events.types import Priority
from hub.identities import normalise_email
from hub.ids import new_id
from hub.store.db import Conn

MAX_SNOOZE_MINUTES = 60 * 24 * 90
MAX_NOTE = 10_000


@dataclasses.dataclass(frozen=True)
class Rule:
    id: str
    name: str
    position: int
    enabled: bool
    trigger: str
    match: str
    conditions: list[Condition]
    actions: list[Action]
    stop_processing: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    #: ``no_reply``: minutes without an agent's reply before it fires
    wait_minutes: int | None = None


COLUMNS = (
    "id, name, position, enabled, trigger, match, conditions, actions, stop_processing, "
    "disabled_reason, created_at, updated_at, wait_minutes"
)


def rule_of(row: Any) -> Rule:
    values = {k: row[k] for k in COLUMNS.split(", ")}
    values["conditions"] = msgspec.convert(values["conditions"], list[Condition])
    values["actions"] = msgspec.convert(values["actions"], list[Action])
    return Rule(**values)


def _invalid(path: str, message: str) -> Refused:
    return Refused("invalid", "invalid_rule", message, {"path": path})


async def _exists(conn: Conn, sql: str, account_id: str, value: Any) -> bool:
    return bool(await conn.fetchval(sql, account_id, value))


def sends_email(channel: str) -> bool:
    """An inbox of the channel sends email (IMAP/SMTP, SendGrid): its contacts are mailboxes."""
    adapter = get_channel(channel)
    return adapter is not None and adapter.manifest.identity_channel == "email"


#: the fields an action type takes besides ``value``
_EXTRAS = {"send_template": ("language", "parameters"), "send_email": ("to", "subject", "content")}


def _check_template(action: Action, path: str) -> None:
    if not isinstance(action.value, str) or action.language is None:
        raise _invalid(path, "send_template takes a template name (value) and a language")
    try:
        Template(action.value, action.language, tuple(action.parameters or ())).check()
    except ValueError as exc:
        raise _invalid(path, str(exc)) from exc


async def _check_email(conn: Conn, account_id: str, action: Action, path: str) -> None:
    if action.to is None or normalise_email(action.to) is None:
        raise _invalid(f"{path}.to", "send_email takes an email address in to")
    if not action.content or not action.content.strip() or len(action.content) > MAX_NOTE:
        raise _invalid(f"{path}.content", f"send_email takes content, 1 to {MAX_NOTE} characters")
    if action.subject is not None and (
        not action.subject.strip() or any(c in action.subject for c in "\r\n\x00")
    ):
        raise _invalid(f"{path}.subject", "a subject is one line of text")
    row = await conn.fetchrow(
        "SELECT channel, disabled_at FROM inboxes WHERE id = $1 AND account_id = $2",
        action.value,
        account_id,
    )
    if row is None or not sends_email(row["channel"]):
        raise _invalid(f"{path}.value", "send_email takes the id of an email inbox of the account")
    if row["disabled_at"] is not None:
        raise _invalid(f"{path}.value", "the email inbox is disabled")


async def check_action(conn: Conn, account_id: str, action: Action, path: str) -> None:
    """Refuse an action whose value is of the wrong kind or names nothing of the account."""
    kind, value = action.type, action.value
    for extra in ("language", "parameters", "to", "subject", "content"):
        if getattr(action, extra) is not None and extra not in _EXTRAS.get(kind, ()):
            raise _invalid(f"{path}.{extra}", f"{kind} takes no {extra}")
    if kind in ("unassign", "mute"):
        if value is not None:
            raise _invalid(path, f"{kind} takes no value")
        return
    if kind == "send_template":
        _check_template(action, path)
        return
    if kind == "send_email":
        if not isinstance(value, str) or not value:
            raise _invalid(f"{path}.value", "send_email takes the id of an email inbox")
        await _check_email(conn, account_id, action, path)
        return
    if kind in ("add_labels", "remove_labels"):
        if not isinstance(value, list) or not value:
            raise _invalid(path, f"{kind} takes a non-empty list of label names")
        known = {
            r["name"]
            for r in await conn.fetch(
                "SELECT name FROM labels WHERE account_id = $1 AND name = ANY($2::text[])",
                account_id,
                value,
            )
        }
        if set(value) - known:
            raise _invalid(path, f"no such labels: {', '.join(sorted(set(value) - known))}")
        return
    if kind == "snooze":
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 1 <= value <= MAX_SNOOZE_MINUTES
        ):
            raise _invalid(path, f"snooze takes minutes, 1 to {MAX_SNOOZE_MINUTES}")
        return
    if not isinstance(value, str) or not value or "\x00" in value:
        raise _invalid(path, f"{kind} takes a non-empty string")
    if kind == "set_priority" and value not in {p.value for p in Priority}:
        raise _invalid(path, "priority: low, medium, high or urgent")
    if kind == "set_status" and value not in ("open", "pending", "resolved"):
        raise _invalid(path, "status: open, pending or resolved")
    if kind == "private_note" and len(value) > MAX_NOTE:
        raise _invalid(path, f"a note may have at most {MAX_NOTE} characters")
    lookups = {
        "assign_agent": (
            "SELECT 1 FROM users WHERE account_id = $1 AND id = $2 AND disabled_at IS NULL",
            "no such enabled user in this account",
        ),
        "assign_team": ("SELECT 1 FROM teams WHERE account_id = $1 AND id = $2", "no such team"),
        "send_reply": (
            "SELECT 1 FROM canned_responses WHERE account_id = $1 AND id = $2",
            "no such canned response",
        ),
        "send_webhook": (
            "SELECT 1 FROM webhook_subscriptions WHERE account_id = $1 AND id = $2",
            "no such webhook",
        ),
    }
    if kind in lookups:
        sql, missing = lookups[kind]
        if not await _exists(conn, sql, account_id, value):
            raise _invalid(path, missing)


async def check_rule(
    conn: Conn,
    account_id: str,
    trigger: str,
    conditions: Sequence[Condition],
    actions: Sequence[Action],
    wait_minutes: int | None = None,
) -> None:
    if trigger not in TRIGGERS:
        raise _invalid("$.trigger", f"trigger: one of {', '.join(TRIGGERS)}")
    if trigger == "no_reply":
        if wait_minutes is None or not 1 <= wait_minutes <= MAX_WAIT_MINUTES:
            raise _invalid(
                "$.wait_minutes", f"no_reply takes wait_minutes, 1 to {MAX_WAIT_MINUTES}"
            )
    elif wait_minutes is not None:
        raise _invalid("$.wait_minutes", "only the no_reply trigger takes wait_minutes")
    for i, condition in enumerate(conditions):
        try:
            check_condition(condition)
        except RuleInvalid as exc:
            raise _invalid(f"$.conditions[{i}].{exc.path}", exc.message) from exc
    keys = {c.key for c in conditions if c.field == "contact_attribute" and c.key}
    if keys:
        defined = {
            r["key"]
            for r in await conn.fetch(
                """SELECT key FROM contact_attribute_definitions
                    WHERE account_id = $1 AND key = ANY($2::text[])""",
                account_id,
                sorted(keys),
            )
        }
        for i, c in enumerate(conditions):
            if c.field == "contact_attribute" and c.key not in defined:
                raise _invalid(f"$.conditions[{i}].key", f"no contact attribute {c.key!r}")
    if not actions:
        raise _invalid("$.actions", "a rule needs at least one action")
    for i, action in enumerate(actions):
        await check_action(conn, account_id, action, f"$.actions[{i}]")


def _plain(items: Sequence[msgspec.Struct]) -> list[Any]:
    return [msgspec.to_builtins(i) for i in items]


async def create_rule(
    conn: Conn,
    *,
    account_id: str,
    name: str,
    trigger: str,
    match: str,
    conditions: Sequence[Condition],
    actions: Sequence[Action],
    stop_processing: bool,
    enabled: bool,
    position: int | None,
    actor: Principal,
    origin: Origin,
    wait_minutes: int | None = None,
) -> Rule:
    await check_rule(conn, account_id, trigger, conditions, actions, wait_minutes)
    if position is None:
        position = await conn.fetchval(
            "SELECT coalesce(max(position), 0) + 1 FROM automation_rules WHERE account_id = $1",
            account_id,
        )
    row = await conn.fetchrow(
        f"""INSERT INTO automation_rules (id, account_id, name, position, enabled, trigger, match,
                                          conditions, actions, stop_processing, wait_minutes)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}""",
        new_id(), account_id, name, position, enabled, trigger, match, _plain(conditions),
        _plain(actions), stop_processing, wait_minutes,
    )  # fmt: skip
    made = rule_of(row)
    await audit_object(
        conn, "automation_rule", account_id, made.id, "automation_rule.created", actor, origin,
        name=name, trigger=trigger,
    )  # fmt: skip
    return made


async def get_rule(conn: Conn, account_id: str, rule_id: str) -> Rule:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM automation_rules WHERE id = $1 AND account_id = $2",
        rule_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such rule")
    return rule_of(row)


async def list_rules(conn: Conn, account_id: str, trigger: str | None = None) -> list[Rule]:
    """Every rule of the account in evaluation order."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM automation_rules
             WHERE account_id = $1 AND ($2::text IS NULL OR trigger = $2)
             ORDER BY position, id""",
        account_id,
        trigger,
    )
    return [rule_of(r) for r in rows]


async def update_rule(
    conn: Conn,
    *,
    account_id: str,
    rule_id: str,
    changes: dict[str, Any],
    actor: Principal,
    origin: Origin,
) -> Rule:
    """``changes``: the fields given. A rule saved again (or enabled) loses its
    ``disabled_reason``: it was checked anew."""
    current = await get_rule(conn, account_id, rule_id)
    trigger = changes.get("trigger", current.trigger)
    conditions = changes.get("conditions", current.conditions)
    actions = changes.get("actions", current.actions)
    wait = changes.get("wait_minutes", current.wait_minutes if trigger == "no_reply" else None)
    await check_rule(conn, account_id, trigger, conditions, actions, wait)
    row = await conn.fetchrow(
        f"""UPDATE automation_rules
               SET name = $3, position = $4, enabled = $5, trigger = $6, match = $7,
                   conditions = $8, actions = $9, stop_processing = $10,
                   disabled_reason = NULL, updated_at = now(), wait_minutes = $11
             WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}""",
        rule_id,
        account_id,
        changes.get("name", current.name),
        changes.get("position", current.position),
        changes.get("enabled", current.enabled if current.disabled_reason is None else True),
        trigger,
        changes.get("match", current.match),
        _plain(conditions),
        _plain(actions),
        changes.get("stop_processing", current.stop_processing),
        wait,
    )
    await audit_object(
        conn, "automation_rule", account_id, rule_id, "automation_rule.updated", actor, origin,
        changed=sorted(changes),
    )  # fmt: skip
    return rule_of(row)


async def delete_rule(
    conn: Conn, *, account_id: str, rule_id: str, actor: Principal, origin: Origin
) -> None:
    name = await conn.fetchval(
        "DELETE FROM automation_rules WHERE id = $1 AND account_id = $2 RETURNING name",
        rule_id,
        account_id,
    )
    if name is None:
        raise Refused("not_found", "not_found", "no such rule")
    await audit_object(
        conn, "automation_rule", account_id, rule_id, "automation_rule.deleted", actor, origin,
        name=name,
    )  # fmt: skip


async def disable_rule(conn: Conn, account_id: str, rule_id: str, reason: str) -> None:
    """Turn a rule off because it broke while running; the reason shows in the API and the
    audit log (actor: the hub)."""
    await conn.execute(
        """UPDATE automation_rules SET enabled = false, disabled_reason = $3, updated_at = now()
            WHERE id = $1 AND account_id = $2""",
        rule_id,
        account_id,
        reason[:500],
    )
    await record(
        conn,
        account_id=account_id,
        actor=None,
        action="automation_rule.disabled",
        object_type="automation_rule",
        object_id=rule_id,
        details={"reason": reason[:500]},
        actor_override=("system", None),
    )
