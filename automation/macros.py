"""Macros: a named list of actions (the rules' vocabulary, plus ``run_macro`` to include another
macro) that an agent runs on a conversation in one call.

Saving checks every action as a rule's would be checked (agents, teams, labels, canned
responses of the account) and refuses a macro that includes itself through any chain of
``run_macro`` (``422 invalid_macro``). Running applies the actions through the core's actions
with the macro as the actor (``integration``, the macro's id), so the changes are ordinary events
on the timeline; the run itself is in the audit log under the agent who asked. A macro whose
action stopped working (its agent disabled, its label or canned response deleted, a macro it
includes gone) is turned off with the reason, shown by the API, and the run answers 409.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from automation.rule_engine import run_actions
from automation.rule_model import Action, ActionType
from automation.rule_store import check_action
from hub.actions.accounts import Refused, audit_object
from hub.actions.conversations import ConversationRefused
from hub.actions.messages import MessageRefused
from hub.audit import Origin, record
from hub.authz import Principal
from hub.events import Actor, ActorKind
from hub.ids import new_id
from hub.store.db import Conn

MacroActionType = ActionType | Literal["run_macro"]
#: actions one run may apply at most, after including other macros
MAX_ACTIONS = 100
#: how deep macros may include each other
MAX_NESTING = 5


class MacroAction(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """``value`` (and the other fields) as for a rule's action; ``run_macro`` takes a macro
    id."""

    type: MacroActionType
    value: str | list[str] | int | None = None
    language: str | None = None
    parameters: list[str] | None = None
    to: str | None = None
    subject: str | None = None
    content: str | None = None

    def plain(self) -> Action:
        """As a rule's action (not ``run_macro``)."""
        assert self.type != "run_macro"
        return Action(
            self.type, self.value, self.language, self.parameters, self.to, self.subject,
            self.content,
        )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Macro:
    id: str
    name: str
    actions: list[MacroAction]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


COLUMNS = "id, name, actions, disabled_reason, created_at, updated_at"


def macro_of(row: Any) -> Macro:
    return Macro(
        id=row["id"],
        name=row["name"],
        actions=msgspec.convert(row["actions"], list[MacroAction]),
        enabled=row["disabled_reason"] is None,
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _invalid(path: str, message: str) -> Refused:
    return Refused("invalid", "invalid_macro", message, {"path": path})


async def _check_action(conn: Conn, account_id: str, action: Action, path: str) -> None:
    """A rule action's check, refused as a macro's."""
    try:
        await check_action(conn, account_id, action, path)
    except Refused as exc:
        where = exc.details.get("path", path) if isinstance(exc.details, dict) else path
        raise _invalid(where, exc.message) from exc


async def _includes(conn: Conn, account_id: str) -> dict[str, list[str]]:
    """Which macros each macro of the account includes."""
    rows = await conn.fetch("SELECT id, actions FROM macros WHERE account_id = $1", account_id)
    return {
        r["id"]: [str(a.get("value")) for a in r["actions"] if a.get("type") == "run_macro"]
        for r in rows
    }


def _cycle(graph: dict[str, list[str]], start: str) -> list[str] | None:
    """A chain of includes from ``start`` back to itself, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, []):
            if nxt == start:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


async def check_macro(
    conn: Conn, account_id: str, macro_id: str, actions: Sequence[MacroAction]
) -> None:
    if not actions:
        raise _invalid("$.actions", "a macro needs at least one action")
    for i, action in enumerate(actions):
        path = f"$.actions[{i}]"
        if action.type == "send_webhook":
            raise _invalid(path, "send_webhook is for rules (a macro has no triggering event)")
        if action.type == "run_macro":
            if action.value == macro_id:
                continue  # itself: the cycle check below says so
            if not isinstance(action.value, str) or not await conn.fetchval(
                "SELECT 1 FROM macros WHERE account_id = $1 AND id = $2", account_id, action.value
            ):
                raise _invalid(path, "no such macro")
            continue
        await _check_action(conn, account_id, action.plain(), path)
    graph = await _includes(conn, account_id)
    graph[macro_id] = [str(a.value) for a in actions if a.type == "run_macro"]
    chain = _cycle(graph, macro_id)
    if chain is not None:
        raise _invalid("$.actions", "the macro would run itself: " + " -> ".join(chain))


async def create_macro(
    conn: Conn,
    *,
    account_id: str,
    name: str,
    actions: Sequence[MacroAction],
    actor: Principal,
    origin: Origin,
) -> Macro:
    macro_id = new_id()
    await check_macro(conn, account_id, macro_id, actions)
    row = await conn.fetchrow(
        f"""INSERT INTO macros (id, account_id, name, actions) VALUES ($1, $2, $3, $4)
            ON CONFLICT (account_id, name) DO NOTHING RETURNING {COLUMNS}""",
        macro_id,
        account_id,
        name,
        [msgspec.to_builtins(a) for a in actions],
    )
    if row is None:
        raise Refused("conflict", "conflict", "a macro of that name exists")
    await audit_object(
        conn, "macro", account_id, macro_id, "macro.created", actor, origin, name=name
    )
    return macro_of(row)


async def get_macro(conn: Conn, account_id: str, macro_id: str) -> Macro:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM macros WHERE id = $1 AND account_id = $2", macro_id, account_id
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such macro")
    return macro_of(row)


async def list_macros(conn: Conn, account_id: str) -> list[Macro]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM macros WHERE account_id = $1 ORDER BY name, id", account_id
    )
    return [macro_of(r) for r in rows]


async def update_macro(
    conn: Conn,
    *,
    account_id: str,
    macro_id: str,
    name: str | None,
    actions: Sequence[MacroAction] | None,
    actor: Principal,
    origin: Origin,
) -> Macro:
    """Saving checks the macro anew and clears a disabled reason."""
    current = await get_macro(conn, account_id, macro_id)
    actions = current.actions if actions is None else actions
    await check_macro(conn, account_id, macro_id, actions)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                f"""UPDATE macros SET name = $3, actions = $4, disabled_reason = NULL,
                                      updated_at = now()
                     WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}""",
                macro_id,
                account_id,
                current.name if name is None else name,
                [msgspec.to_builtins(a) for a in actions],
            )
    except asyncpg.UniqueViolationError as exc:
        raise Refused("conflict", "conflict", "a macro of that name exists") from exc
    await audit_object(
        conn, "macro", account_id, macro_id, "macro.updated", actor, origin,
        changed=[k for k, v in (("name", name), ("actions", actions)) if v is not None],
    )  # fmt: skip
    return macro_of(row)


async def delete_macro(
    conn: Conn, *, account_id: str, macro_id: str, actor: Principal, origin: Origin
) -> None:
    name = await conn.fetchval(
        "DELETE FROM macros WHERE id = $1 AND account_id = $2 RETURNING name", macro_id, account_id
    )
    if name is None:
        raise Refused("not_found", "not_found", "no such macro")
    await audit_object(
        conn, "macro", account_id, macro_id, "macro.deleted", actor, origin, name=name
    )


async def disable_macro(conn: Conn, account_id: str, macro_id: str, reason: str) -> None:
    """Turn a macro off because it broke; the reason shows in the API and the audit log."""
    await conn.execute(
        """UPDATE macros SET disabled_reason = $3, updated_at = now()
            WHERE id = $1 AND account_id = $2""",
        macro_id,
        account_id,
        reason[:500],
    )
    await record(
        conn,
        account_id=account_id,
        actor=None,
        action="macro.disabled",
        object_type="macro",
        object_id=macro_id,
        details={"reason": reason[:500]},
        actor_override=("system", None),
    )


async def _expand(conn: Conn, account_id: str, macro: Macro, depth: int = 0) -> list[Action]:
    """The macro's actions with included macros spelled out, each checked anew."""
    found: list[Action] = []
    for i, action in enumerate(macro.actions):
        if action.type == "run_macro":
            if depth >= MAX_NESTING:
                raise _invalid(f"$.actions[{i}]", "macros include each other too deeply")
            try:
                inner = await get_macro(conn, account_id, str(action.value))
            except Refused as exc:
                raise _invalid(f"$.actions[{i}]", "the macro it runs no longer exists") from exc
            if inner.disabled_reason is not None:
                raise _invalid(f"$.actions[{i}]", f"the macro it runs is off: {inner.name}")
            found.extend(await _expand(conn, account_id, inner, depth + 1))
        else:
            plain = action.plain()
            await _check_action(conn, account_id, plain, f"$.actions[{i}]")
            found.append(plain)
        if len(found) > MAX_ACTIONS:
            raise _invalid("$.actions", f"a run may apply at most {MAX_ACTIONS} actions")
    return found


@dataclasses.dataclass(frozen=True)
class Ran:
    macro_id: str
    conversation_id: str
    actions: int


async def run_macro(
    conn: Conn,
    *,
    principal: Principal,
    conversation_id: str,
    macro_id: str,
    correlation_id: str | None,
    origin: Origin,
) -> Ran | Refused | ConversationRefused | MessageRefused:
    """Run in a transaction that commits even when this answers a refusal (so turning a broken
    macro off stays): the refusal is returned, not raised, after everything it wrote."""
    account_id = principal.account_id
    row = await conn.fetchrow(
        "SELECT inbox_id, labels FROM conversations WHERE id = $1 AND account_id = $2",
        conversation_id,
        account_id,
    )
    if row is None or not principal.sees(row["inbox_id"]):
        return Refused("not_found", "not_found", "no such conversation")
    try:
        macro = await get_macro(conn, account_id, macro_id)
    except Refused as exc:
        return exc
    if macro.disabled_reason is not None:
        return Refused("conflict", "macro_disabled", f"the macro is off: {macro.disabled_reason}")
    try:
        async with conn.transaction():
            actions = await _expand(conn, account_id, macro)
    except Refused as exc:
        await disable_macro(conn, account_id, macro.id, exc.message)
        return Refused("conflict", "macro_disabled", f"the macro is off: {exc.message}")
    try:
        async with conn.transaction():
            await run_actions(
                conn,
                account_id=account_id,
                conversation_id=conversation_id,
                labels=row["labels"],
                actions=actions,
                actor=Actor(ActorKind.INTEGRATION, macro.id),
                correlation_id=correlation_id,
                causation_id=None,
            )
    except (Refused, ConversationRefused, MessageRefused) as exc:
        return exc
    await record(
        conn,
        account_id=account_id,
        actor=principal,
        action="macro.run",
        object_type="macro",
        object_id=macro.id,
        origin=origin,
        details={"conversation_id": conversation_id, "name": macro.name},
    )
    return Ran(macro.id, conversation_id, len(actions))
