"""Outgoing webhooks: subscriptions per account, their deliveries, dead letters and redelivery
(administrators; see docs/automation.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeVar

import msgspec

from automation.webhook_store import (
    Delivery,
    Subscription,
    create_subscription,
    delete_subscription,
    get_subscription,
    list_deliveries,
    list_subscriptions,
    redeliver,
    update_subscription,
)
from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import ListQuery, Name, path_id, run
from hub.authz import Permission
from hub.fields import NO_NUL
from hub.store.db import Conn
from hub.store.reads import BadCursor

T = TypeVar("T")


def given(value: T | msgspec.UnsetType) -> T | None:
    return None if isinstance(value, msgspec.UnsetType) else value


Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=NO_NUL)]
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
EventTypes = Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=50)]


class Webhook(msgspec.Struct):
    id: str
    name: str
    url: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class NewWebhook(Webhook):
    """The reply to a create: ``secret`` signs every delivery; it is shown only here."""

    secret: str


class WebhookPage(msgspec.Struct):
    data: list[Webhook]
    next_cursor: str | None


class WebhookNew(msgspec.Struct, forbid_unknown_fields=True):
    """``event_types``: names such as ``message.received``, or ``*`` for every event."""

    name: Name
    url: Url
    event_types: EventTypes


class WebhookPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    url: Url | msgspec.UnsetType = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class DeliveryQuery(ListQuery, forbid_unknown_fields=True):
    #: ``dead``: the dead-letter list
    state: Literal["pending", "delivered", "dead"] | None = None


class WebhookDelivery(msgspec.Struct):
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


class DeliveryPage(msgspec.Struct):
    data: list[WebhookDelivery]
    next_cursor: str | None


def _webhook(sub: Subscription) -> Webhook:
    return msgspec.convert(sub, Webhook, from_attributes=True)


def _delivery(item: Delivery) -> WebhookDelivery:
    return msgspec.convert(item, WebhookDelivery, from_attributes=True)


@route(
    "GET",
    "/api/v1/webhooks",
    permission=Permission.ACCOUNT_MANAGE,
    summary="List the account's outgoing webhook subscriptions",
    tag="webhooks",
    query=ListQuery,
    reply=WebhookPage,
)
async def list_webhooks_route(call: Call) -> WebhookPage:
    q: ListQuery = call.query
    try:
        items, cursor = await run(
            call, list_subscriptions, call.principal.account_id, limit=q.limit, cursor=q.cursor
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    return WebhookPage([_webhook(s) for s in items], cursor)


@route(
    "POST",
    "/api/v1/webhooks",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Subscribe a URL to event types (the reply shows the signing secret, once)",
    tag="webhooks",
    body=WebhookNew,
    reply=NewWebhook,
    status=201,
)
async def create_webhook_route(call: Call) -> NewWebhook:
    """422 ``url_refused`` for a private, loopback or reserved address (unless
    ``HUB_WEBHOOK_ALLOW_PRIVATE``), 422 ``unknown_event_types``."""
    body: WebhookNew = call.body
    who = call.principal
    made, secret = await run(
        call,
        create_subscription,
        call.hub.box,
        account_id=who.account_id,
        name=body.name,
        url=body.url,
        event_types=body.event_types,
        allow_private=call.hub.config.webhook_allow_private,
        actor=who,
        origin=call.origin,
    )
    return NewWebhook(**msgspec.structs.asdict(_webhook(made)), secret=secret)


@route(
    "GET",
    "/api/v1/webhooks/{webhook_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="One outgoing webhook subscription",
    tag="webhooks",
    reply=Webhook,
)
async def get_webhook_route(call: Call) -> Webhook:
    webhook_id = path_id(call, "webhook_id", "webhook")
    return _webhook(await run(call, get_subscription, call.principal.account_id, webhook_id))


@route(
    "PATCH",
    "/api/v1/webhooks/{webhook_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Change a subscription's name, URL, event types, or turn it off",
    tag="webhooks",
    body=WebhookPatch,
    reply=Webhook,
)
async def patch_webhook_route(call: Call) -> Webhook:
    body: WebhookPatch = call.body
    who = call.principal

    async def change(conn: Conn) -> Subscription:
        return await update_subscription(
            conn,
            account_id=who.account_id,
            webhook_id=path_id(call, "webhook_id", "webhook"),
            allow_private=call.hub.config.webhook_allow_private,
            actor=who,
            origin=call.origin,
            name=given(body.name),
            url=given(body.url),
            event_types=given(body.event_types),
            enabled=given(body.enabled),
        )

    return _webhook(await run(call, change))


@route(
    "DELETE",
    "/api/v1/webhooks/{webhook_id}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Delete a subscription and its deliveries",
    tag="webhooks",
    status=204,
)
async def delete_webhook_route(call: Call) -> Reply:
    who = call.principal
    await run(
        call,
        delete_subscription,
        account_id=who.account_id,
        webhook_id=path_id(call, "webhook_id", "webhook"),
        actor=who,
        origin=call.origin,
    )
    return Reply(None, 204)


@route(
    "GET",
    "/api/v1/webhooks/{webhook_id}/deliveries",
    permission=Permission.ACCOUNT_MANAGE,
    summary="A subscription's deliveries, newest first (state=dead: the dead letters)",
    tag="webhooks",
    query=DeliveryQuery,
    reply=DeliveryPage,
)
async def list_deliveries_route(call: Call) -> DeliveryPage:
    q: DeliveryQuery = call.query
    try:
        items, cursor = await run(
            call,
            list_deliveries,
            call.principal.account_id,
            path_id(call, "webhook_id", "webhook"),
            state=q.state,
            limit=q.limit,
            cursor=q.cursor,
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    return DeliveryPage([_delivery(d) for d in items], cursor)


@route(
    "POST",
    "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Send a dead (or delivered) delivery again, with a fresh round of retries",
    tag="webhooks",
    reply=WebhookDelivery,
    errors=(409,),
)
async def redeliver_route(call: Call) -> WebhookDelivery:
    """409 while the delivery is still pending."""
    who = call.principal
    item = await run(
        call,
        redeliver,
        account_id=who.account_id,
        webhook_id=path_id(call, "webhook_id", "webhook"),
        delivery_id=path_id(call, "delivery_id", "delivery"),
        actor=who,
        origin=call.origin,
    )
    return _delivery(item)


ROUTES = [
    list_webhooks_route,
    create_webhook_route,
    get_webhook_route,
    patch_webhook_route,
    delete_webhook_route,
    list_deliveries_route,
    redeliver_route,
]
