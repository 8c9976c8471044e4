"""Macros: administrators manage them, every agent lists them and runs one on a conversation they
can see (see docs/automation.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from automation.macros import (
    Macro,
    MacroAction,
    MacroActionType,
    Ran,
    create_macro,
    delete_macro,
    get_macro,
    list_macros,
    run_macro,
    update_macro,
)
from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import Name, path_id, record_id, refusal, run
from hub.actions.accounts import Refused
from hub.authz import Permission
from hub.fields import NO_NUL
from hub.logs import correlation_id
from hub.store.db import Conn, in_transaction

STATUS = {"not_found": 404, "conflict": 409, "invalid": 422}
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=NO_NUL)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=900, pattern=NO_NUL)]


class MacroStep(msgspec.Struct, forbid_unknown_fields=True):
    """One action: the rules' vocabulary (without ``send_webhook``), or ``run_macro`` with a
    macro id."""

    type: MacroActionType
    value: Text | Annotated[list[Text], msgspec.Meta(max_length=100)] | int | None = None
    language: Short | msgspec.UnsetType = msgspec.UNSET
    parameters: Annotated[list[Text], msgspec.Meta(max_length=100)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    to: Short | msgspec.UnsetType = msgspec.UNSET
    subject: Short | msgspec.UnsetType = msgspec.UNSET
    content: Text | msgspec.UnsetType = msgspec.UNSET


Steps = Annotated[list[MacroStep], msgspec.Meta(min_length=1, max_length=50)]


class MacroOut(msgspec.Struct):
    id: str
    name: str
    actions: list[MacroStep]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class MacroList(msgspec.Struct):
    data: list[MacroOut]


class MacroNew(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    actions: Steps


class MacroPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    actions: Steps | msgspec.UnsetType = msgspec.UNSET


class MacroRun(msgspec.Struct):
    macro_id: str
    conversation_id: str
    actions: int


def _out(m: Macro) -> MacroOut:
    return MacroOut(
        id=m.id, name=m.name,
        actions=[msgspec.convert(msgspec.to_builtins(a), MacroStep) for a in m.actions],
        enabled=m.enabled, disabled_reason=m.disabled_reason, created_at=m.created_at,
        updated_at=m.updated_at,
    )  # fmt: skip


def _steps(items: list[MacroStep]) -> list[MacroAction]:
    return [msgspec.convert(msgspec.to_builtins(s), MacroAction) for s in items]


@route(
    "GET",
    "/api/v1/macros",
    permission=Permission.ACCOUNT_READ,
    summary="The account's macros (with the reason when the hub turned one off)",
    tag="automation",
    reply=MacroList,
)
async def list_macros_route(call: Call) -> MacroList:
    found = await run(call, list_macros, call.principal.account_id)
    return MacroList([_out(m) for m in found])


@route(
    "POST",
    "/api/v1/macros",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Create a macro (422 for actions naming nothing of the account, or a macro that "
    "would run itself)",
    tag="automation",
    body=MacroNew,
    reply=MacroOut,
    status=201,
    errors=(409,),
)
async def create_macro_route(call: Call) -> MacroOut:
    body: MacroNew = call.body
    who = call.principal
    made = await run(
        call, create_macro, account_id=who.account_id, name=body.name,
        actions=_steps(body.actions), actor=who, origin=call.origin,
    )  # fmt: skip
    return _out(made)


@route(
    "GET",
    "/api/v1/macros/{macro_id}",
    permission=Permission.ACCOUNT_READ,
    summary="One macro",
    tag="automation",
    reply=MacroOut,
)
async def get_macro_route(call: Call) -> MacroOut:
    macro_id = path_id(call, "macro_id", "macro")
    return _out(await run(call, get_macro, call.principal.account_id, macro_id))


@route(
    "PATCH",
    "/api/v1/macros/{macro_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Change a macro; saving it checks it anew and turns it back on",
    tag="automation",
    body=MacroPatch,
    reply=MacroOut,
    errors=(409,),
)
async def patch_macro_route(call: Call) -> MacroOut:
    body: MacroPatch = call.body
    who = call.principal
    made = await run(
        call, update_macro, account_id=who.account_id,
        macro_id=path_id(call, "macro_id", "macro"),
        name=None if body.name is msgspec.UNSET else body.name,
        actions=None if body.actions is msgspec.UNSET else _steps(body.actions),
        actor=who, origin=call.origin,
    )  # fmt: skip
    return _out(made)


@route(
    "DELETE",
    "/api/v1/macros/{macro_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Delete a macro",
    tag="automation",
    status=204,
)
async def delete_macro_route(call: Call) -> Reply:
    who = call.principal
    await run(
        call, delete_macro, account_id=who.account_id,
        macro_id=path_id(call, "macro_id", "macro"), actor=who, origin=call.origin,
    )  # fmt: skip
    return Reply(None, 204)


@route(
    "POST",
    "/api/v1/conversations/{conversation_id}/macros/{macro_id}",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Run a macro on a conversation: its actions are applied with the macro as the "
    "actor (409 macro_disabled when it is off, with the reason)",
    tag="automation",
    reply=MacroRun,
    errors=(409,),
)
async def run_macro_route(call: Call) -> MacroRun:
    who = call.principal
    conversation_id = record_id(call, "conversation_id")
    macro_id = path_id(call, "macro_id", "macro")

    async def act(conn: Conn) -> Ran | ApiError:
        done = await run_macro(
            conn, principal=who, conversation_id=conversation_id, macro_id=macro_id,
            correlation_id=correlation_id.get(), origin=call.origin,
        )  # fmt: skip
        if isinstance(done, Refused):
            return ApiError(STATUS[done.kind], done.code, done.message, done.details)
        if not isinstance(done, Ran):
            return refusal(done)
        return done

    result = await in_transaction(call.hub.pool, act)
    if isinstance(result, ApiError):
        raise result
    return MacroRun(result.macro_id, result.conversation_id, result.actions)


ROUTES = [
    list_macros_route,
    create_macro_route,
    get_macro_route,
    patch_macro_route,
    delete_macro_route,
    run_macro_route,
]
