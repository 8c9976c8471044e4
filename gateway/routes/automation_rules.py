"""Automation rules (administrators): create, list, change, delete, and a dry run that shows
which rules would fire on a conversation (see docs/automation.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from automation.rule_engine import dry_run
from automation.rule_model import Action, ActionType, Condition, Field, Op, Trigger
from automation.rule_store import (
    Rule,
    create_rule,
    delete_rule,
    get_rule,
    list_rules,
    update_rule,
)
from gateway.route import Call, Reply, route
from gateway.routes._common import Name, not_found, path_id, run
from hub.authz import Permission
from hub.fields import NO_NUL
from hub.store.db import Conn

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=NO_NUL)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=900, pattern=NO_NUL)]
Value = Text | Annotated[list[Text], msgspec.Meta(max_length=100)] | int | None


class RuleCondition(msgspec.Struct, forbid_unknown_fields=True):
    """``field``: channel, inbox_id, content, direction, labels, priority, status,
    business_hours, language, sentiment, intent, contact_attribute (with ``key``)."""

    field: Field
    op: Op
    value: Text | Annotated[list[Text], msgspec.Meta(max_length=100)] | None = None
    key: Short | msgspec.UnsetType = msgspec.UNSET


class RuleAction(msgspec.Struct, forbid_unknown_fields=True):
    """``language``, ``parameters``: a ``send_template``'s; ``to``, ``subject``, ``content``:
    a ``send_email``'s."""

    type: ActionType
    value: Value = None
    language: Short | msgspec.UnsetType = msgspec.UNSET
    parameters: Annotated[list[Text], msgspec.Meta(max_length=100)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    to: Short | msgspec.UnsetType = msgspec.UNSET
    subject: Short | msgspec.UnsetType = msgspec.UNSET
    content: Text | msgspec.UnsetType = msgspec.UNSET


Conditions = Annotated[list[RuleCondition], msgspec.Meta(max_length=50)]
Actions = Annotated[list[RuleAction], msgspec.Meta(min_length=1, max_length=20)]
Position = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
#: ``no_reply`` rules: minutes without an agent's reply before the rule fires
WaitMinutes = Annotated[int, msgspec.Meta(ge=1, le=525_600)]


class RuleOut(msgspec.Struct):
    id: str
    name: str
    position: int
    enabled: bool
    trigger: str
    match: str
    conditions: list[RuleCondition]
    actions: list[RuleAction]
    stop_processing: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    wait_minutes: int | None = None


class RuleList(msgspec.Struct):
    data: list[RuleOut]


class RuleNew(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    trigger: Trigger
    actions: Actions
    conditions: Conditions = msgspec.field(default_factory=list)
    match: Literal["all", "any"] = "all"
    stop_processing: bool = False
    enabled: bool = True
    position: Position | None = None
    wait_minutes: WaitMinutes | None = None


class RulePatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    trigger: Trigger | msgspec.UnsetType = msgspec.UNSET
    actions: Actions | msgspec.UnsetType = msgspec.UNSET
    conditions: Conditions | msgspec.UnsetType = msgspec.UNSET
    match: Literal["all", "any"] | msgspec.UnsetType = msgspec.UNSET
    stop_processing: bool | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    position: Position | msgspec.UnsetType = msgspec.UNSET
    wait_minutes: WaitMinutes | msgspec.UnsetType | None = msgspec.UNSET


class DryRunQuery(msgspec.Struct, forbid_unknown_fields=True):
    trigger: Trigger = "message_created"


class DryRunItem(msgspec.Struct):
    rule_id: str
    name: str
    enabled: bool
    matched: bool
    would_fire: bool
    reason: str | None


class DryRunReply(msgspec.Struct):
    data: list[DryRunItem]


def _out(rule: Rule) -> RuleOut:
    return msgspec.convert(msgspec.to_builtins(rule.__dict__), RuleOut)


def _conditions(items: list[RuleCondition]) -> list[Condition]:
    return [msgspec.convert(msgspec.to_builtins(c), Condition) for c in items]


def _actions(items: list[RuleAction]) -> list[Action]:
    return [msgspec.convert(msgspec.to_builtins(a), Action) for a in items]


@route(
    "GET",
    "/api/v1/automation/rules",
    permission=Permission.ACCOUNT_MANAGE,
    summary="The account's rules in evaluation order",
    tag="automation",
    reply=RuleList,
)
async def list_rules_route(call: Call) -> RuleList:
    rules = await run(call, list_rules, call.principal.account_id)
    return RuleList([_out(r) for r in rules])


@route(
    "POST",
    "/api/v1/automation/rules",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Create a rule (422 for unknown fields, unsafe patterns, missing references)",
    tag="automation",
    body=RuleNew,
    reply=RuleOut,
    status=201,
)
async def create_rule_route(call: Call) -> RuleOut:
    body: RuleNew = call.body
    who = call.principal
    made = await run(
        call,
        create_rule,
        account_id=who.account_id,
        name=body.name,
        trigger=body.trigger,
        match=body.match,
        conditions=_conditions(body.conditions),
        actions=_actions(body.actions),
        stop_processing=body.stop_processing,
        enabled=body.enabled,
        position=body.position,
        wait_minutes=body.wait_minutes,
        actor=who,
        origin=call.origin,
    )
    return _out(made)


@route(
    "GET",
    "/api/v1/automation/rules/{rule_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="One rule (with the reason if the hub turned it off)",
    tag="automation",
    reply=RuleOut,
)
async def get_rule_route(call: Call) -> RuleOut:
    rule_id = path_id(call, "rule_id", "rule")
    return _out(await run(call, get_rule, call.principal.account_id, rule_id))


@route(
    "PATCH",
    "/api/v1/automation/rules/{rule_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Change a rule; saving it checks it anew and clears a disabled reason",
    tag="automation",
    body=RulePatch,
    reply=RuleOut,
)
async def patch_rule_route(call: Call) -> RuleOut:
    body: RulePatch = call.body
    who = call.principal
    changes: dict[str, Any] = {
        k: v for k, v in msgspec.structs.asdict(body).items() if v is not msgspec.UNSET
    }
    if "conditions" in changes:
        changes["conditions"] = _conditions(changes["conditions"])
    if "actions" in changes:
        changes["actions"] = _actions(changes["actions"])
    made = await run(
        call,
        update_rule,
        account_id=who.account_id,
        rule_id=path_id(call, "rule_id", "rule"),
        changes=changes,
        actor=who,
        origin=call.origin,
    )
    return _out(made)


@route(
    "DELETE",
    "/api/v1/automation/rules/{rule_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Delete a rule",
    tag="automation",
    status=204,
)
async def delete_rule_route(call: Call) -> Reply:
    who = call.principal
    await run(
        call,
        delete_rule,
        account_id=who.account_id,
        rule_id=path_id(call, "rule_id", "rule"),
        actor=who,
        origin=call.origin,
    )
    return Reply(None, 204)


@route(
    "GET",
    "/api/v1/automation/dry_run/{conversation_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Which rules of a trigger would fire on a conversation as it is now (its last "
    "message as the message); changes nothing",
    tag="automation",
    query=DryRunQuery,
    reply=DryRunReply,
)
async def dry_run_route(call: Call) -> DryRunReply:
    q: DryRunQuery = call.query
    conversation_id = path_id(call, "conversation_id", "conversation")

    async def evaluate(conn: Conn) -> DryRunReply:
        found = await dry_run(conn, call.principal.account_id, conversation_id, q.trigger)
        if found is None:
            raise not_found("conversation")
        return DryRunReply([msgspec.convert(f.__dict__, DryRunItem) for f in found])

    return await run(call, evaluate)


ROUTES = [
    list_rules_route,
    create_rule_route,
    dry_run_route,
    get_rule_route,
    patch_rule_route,
    delete_rule_route,
]
