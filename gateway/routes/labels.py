"""Labels of the account, put on conversations by name."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from gateway.route import Call, Reply, route
from gateway.routes._common import Description, ListQuery, not_found, path_id, run, tidy, whole
from hub.actions.labels import create_label, delete_label, update_label
from hub.authz import Permission
from hub.store.admin_reads import Db, get_label, list_labels
from hub.store.db import Conn

LabelName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00,]*[^\x00,\s][^\x00,]*$")
]
Color = Annotated[str, msgspec.Meta(pattern=whole("#[0-9a-fA-F]{6}"))]


class LabelListQuery(ListQuery, forbid_unknown_fields=True):
    pass


class Label(msgspec.Struct):
    id: str
    name: str
    color: str
    description: str
    created_at: datetime


class LabelPage(msgspec.Struct):
    data: list[Label]
    next_cursor: str | None


class LabelNew(msgspec.Struct, forbid_unknown_fields=True):
    """``name``: unique in the account, no commas; ``color``: ``#rrggbb``."""

    name: LabelName
    color: Color = "#1f93ff"
    description: Description = ""

    def __post_init__(self) -> None:
        self.name = tidy(self.name)
        self.color = self.color.lower()


class LabelPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Renaming does not rename the label on conversations already tagged with it."""

    name: LabelName | msgspec.UnsetType = msgspec.UNSET
    color: Color | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = tidy(self.name)
        if isinstance(self.color, str):
            self.color = self.color.lower()


async def _read(db: Db, account_id: str, label_id: str) -> Label:
    row = await get_label(db, account_id, label_id)
    if row is None:
        raise not_found("label")
    return msgspec.convert(row, Label)


@route(
    "GET",
    "/api/v1/labels",
    permission=Permission.ACCOUNT_READ,
    summary="List the account's labels",
    tag="labels",
    query=LabelListQuery,
    reply=LabelPage,
)
async def list_labels_route(call: Call) -> LabelPage:
    q: LabelListQuery = call.query
    items, cursor = await list_labels(
        call.hub.pool, call.principal.account_id, limit=q.limit, cursor=q.cursor
    )
    return LabelPage(msgspec.convert(items, list[Label]), cursor)


@route(
    "POST",
    "/api/v1/labels",
    permission=Permission.LABELS_MANAGE,
    summary="Create a label",
    tag="labels",
    body=LabelNew,
    reply=Label,
    status=201,
    errors=(409,),
)
async def create_label_route(call: Call) -> Label:
    """409 when the account has a label with this name."""
    body: LabelNew = call.body
    who = call.principal

    async def create(conn: Conn) -> Label:
        label_id = await create_label(
            conn,
            account_id=who.account_id,
            name=body.name,
            color=body.color,
            description=body.description,
            actor=who,
            origin=call.origin,
        )
        return await _read(conn, who.account_id, label_id)

    return await run(call, create)


@route(
    "PATCH",
    "/api/v1/labels/{label_id}",
    permission=Permission.LABELS_MANAGE,
    summary="Rename a label or change its colour or description",
    tag="labels",
    body=LabelPatch,
    reply=Label,
    errors=(409,),
)
async def patch_label_route(call: Call) -> Label:
    body: LabelPatch = call.body
    who = call.principal
    label_id = path_id(call, "label_id", "label")

    async def change(conn: Conn) -> Label:
        await update_label(
            conn,
            account_id=who.account_id,
            label_id=label_id,
            actor=who,
            origin=call.origin,
            name=body.name if isinstance(body.name, str) else None,
            color=body.color if isinstance(body.color, str) else None,
            description=body.description if isinstance(body.description, str) else None,
        )
        return await _read(conn, who.account_id, label_id)

    return await run(call, change)


@route(
    "DELETE",
    "/api/v1/labels/{label_id}",
    permission=Permission.LABELS_MANAGE,
    summary="Delete a label",
    tag="labels",
    status=204,
)
async def delete_label_route(call: Call) -> Reply:
    """Conversations tagged with it keep the name."""
    who = call.principal
    await run(
        call,
        delete_label,
        account_id=who.account_id,
        label_id=path_id(call, "label_id", "label"),
        actor=who,
        origin=call.origin,
    )
    return Reply(None, 204)


ROUTES = [list_labels_route, create_label_route, patch_label_route, delete_label_route]
