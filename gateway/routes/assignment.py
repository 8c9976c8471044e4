"""Automatic assignment of an inbox (administrators; see docs/automation.md)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from automation.assignment import Policy, get_policy, set_policy
from gateway.route import Call, route
from gateway.routes._common import not_found, path_id, run
from hub.actions.accounts import audit_object
from hub.authz import Permission
from hub.store.db import Conn


class AssignmentPolicy(msgspec.Struct, forbid_unknown_fields=True):
    """``capacity``: open and pending conversations an agent may hold (``null``: no limit);
    ``only_online``: only agents who are online get conversations."""

    strategy: Literal["round_robin", "least_busy"]
    capacity: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    only_online: bool = True


def _out(policy: Policy) -> AssignmentPolicy:
    return msgspec.convert(
        {
            "strategy": policy.strategy,
            "capacity": policy.capacity,
            "only_online": policy.only_online,
        },
        AssignmentPolicy,
    )


@route(
    "GET",
    "/api/v1/inboxes/{inbox_id}/assignment",
    permission=Permission.INBOXES_MANAGE,
    summary="The inbox's automatic assignment (404 when it has none)",
    tag="automation",
    reply=AssignmentPolicy,
)
async def get_assignment_route(call: Call) -> AssignmentPolicy:
    inbox_id = path_id(call, "inbox_id", "inbox")
    found = await run(call, get_policy, call.principal.account_id, inbox_id)
    if found is None:
        raise not_found("assignment policy")
    return _out(found)


@route(
    "PUT",
    "/api/v1/inboxes/{inbox_id}/assignment",
    permission=Permission.INBOXES_MANAGE,
    summary="Turn on or change the inbox's automatic assignment",
    tag="automation",
    body=AssignmentPolicy,
    reply=AssignmentPolicy,
)
async def put_assignment_route(call: Call) -> AssignmentPolicy:
    body: AssignmentPolicy = call.body
    who = call.principal
    inbox_id = path_id(call, "inbox_id", "inbox")

    async def save(conn: Conn) -> Policy:
        made = await set_policy(
            conn, account_id=who.account_id, inbox_id=inbox_id, strategy=body.strategy,
            capacity=body.capacity, only_online=body.only_online,
        )  # fmt: skip
        if made is None:
            raise not_found("inbox")
        await audit_object(
            conn, "inbox", who.account_id, inbox_id, "inbox.assignment_set", who, call.origin,
            strategy=body.strategy, capacity=body.capacity, only_online=body.only_online,
        )  # fmt: skip
        return made

    return _out(await run(call, save))


ROUTES = [get_assignment_route, put_assignment_route]
