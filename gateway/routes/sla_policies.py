"""SLA policies of the account (administrators; see docs/automation.md)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from automation.sla import Policy, create_policy, delete_policy, list_policies, update_policy
from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import Name, not_found, path_id, run
from hub.actions.accounts import audit_object
from hub.authz import Permission
from hub.store.db import Conn

Minutes = Annotated[int, msgspec.Meta(ge=1, le=525_600)]
PriorityName = Literal["low", "medium", "high", "urgent"]


class SlaPolicyIn(msgspec.Struct, forbid_unknown_fields=True):
    """Times in business minutes of the conversation's inbox; ``inbox_ids`` and ``priorities``
    limit which conversations the policy applies to (empty: all); ``warning_minutes`` before a
    breach an ``sla.warning`` is emitted (0: none)."""

    name: Name
    first_response_minutes: Minutes | None = None
    next_response_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None
    warning_minutes: Annotated[int, msgspec.Meta(ge=0, le=525_600)] = 0
    inbox_ids: Annotated[list[str], msgspec.Meta(max_length=500)] = []
    priorities: list[PriorityName] = []


class SlaPolicyOut(SlaPolicyIn):
    id: str = ""
    enabled: bool = True


class SlaPolicyList(msgspec.Struct):
    items: list[SlaPolicyOut]


def _out(p: Policy) -> SlaPolicyOut:
    return msgspec.convert(
        {
            "id": p.id, "name": p.name, "enabled": p.enabled, "inbox_ids": p.inbox_ids,
            "priorities": p.priorities, "first_response_minutes": p.first_response_minutes,
            "next_response_minutes": p.next_response_minutes,
            "resolution_minutes": p.resolution_minutes, "warning_minutes": p.warning_minutes,
        },
        SlaPolicyOut,
    )  # fmt: skip


@route(
    "GET",
    "/api/v1/sla_policies",
    permission=Permission.ACCOUNT_MANAGE,
    summary="The account's SLA policies",
    tag="automation",
    reply=SlaPolicyList,
)
async def list_sla_route(call: Call) -> SlaPolicyList:
    found = await run(call, list_policies, call.principal.account_id)
    return SlaPolicyList(items=[_out(p) for p in found])


def _check_times(body: SlaPolicyIn) -> None:
    if not (body.first_response_minutes or body.next_response_minutes or body.resolution_minutes):
        raise ApiError(
            422, "invalid_sla", "a policy needs at least one time", {"field": "resolution_minutes"}
        )


async def _check_inboxes(conn: Conn, account_id: str, body: SlaPolicyIn) -> None:
    known = {
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM inboxes WHERE account_id = $1 AND id = ANY($2::text[])",
            account_id,
            body.inbox_ids,
        )
    }
    if set(body.inbox_ids) - known:
        raise ApiError(422, "invalid_sla", "no such inbox", {"field": "inbox_ids"})


@route(
    "POST",
    "/api/v1/sla_policies",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Create an SLA policy (it applies to conversations created from now on)",
    tag="automation",
    body=SlaPolicyIn,
    reply=SlaPolicyOut,
    status=201,
)
async def create_sla_route(call: Call) -> SlaPolicyOut:
    body: SlaPolicyIn = call.body
    who = call.principal
    _check_times(body)

    async def save(conn: Conn) -> Policy:
        await _check_inboxes(conn, who.account_id, body)
        made = await create_policy(
            conn, who.account_id, name=body.name, inbox_ids=sorted(set(body.inbox_ids)),
            priorities=sorted(set(body.priorities)),
            first_response_minutes=body.first_response_minutes,
            next_response_minutes=body.next_response_minutes,
            resolution_minutes=body.resolution_minutes, warning_minutes=body.warning_minutes,
        )  # fmt: skip
        await audit_object(
            conn, "sla_policy", who.account_id, made.id, "sla_policy.created", who, call.origin,
            name=body.name,
        )  # fmt: skip
        return made

    return _out(await run(call, save))


@route(
    "PUT",
    "/api/v1/sla_policies/{policy_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Change an SLA policy; its running clocks are rescheduled with the new times",
    tag="automation",
    body=SlaPolicyIn,
    reply=SlaPolicyOut,
)
async def update_sla_route(call: Call) -> SlaPolicyOut:
    body: SlaPolicyIn = call.body
    who = call.principal
    policy_id = path_id(call, "policy_id", "SLA policy")
    _check_times(body)

    async def save(conn: Conn) -> Policy:
        await _check_inboxes(conn, who.account_id, body)
        made = await update_policy(
            conn, who.account_id, policy_id, name=body.name,
            inbox_ids=sorted(set(body.inbox_ids)), priorities=sorted(set(body.priorities)),
            first_response_minutes=body.first_response_minutes,
            next_response_minutes=body.next_response_minutes,
            resolution_minutes=body.resolution_minutes, warning_minutes=body.warning_minutes,
        )  # fmt: skip
        if made is None:
            raise not_found("SLA policy")
        await audit_object(
            conn, "sla_policy", who.account_id, policy_id, "sla_policy.updated", who, call.origin,
            name=body.name,
        )  # fmt: skip
        return made

    return _out(await run(call, save))


@route(
    "DELETE",
    "/api/v1/sla_policies/{policy_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Delete an SLA policy and its running clocks",
    tag="automation",
    status=204,
)
async def delete_sla_route(call: Call) -> Reply:
    who = call.principal
    policy_id = path_id(call, "policy_id", "SLA policy")

    async def remove(conn: Conn) -> None:
        if not await delete_policy(conn, who.account_id, policy_id):
            raise not_found("SLA policy")
        await audit_object(
            conn, "sla_policy", who.account_id, policy_id, "sla_policy.deleted", who, call.origin
        )

    await run(call, remove)
    return Reply(None, 204)


ROUTES = [list_sla_route, create_sla_route, update_sla_route, delete_sla_route]
