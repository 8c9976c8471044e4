"""Contacts: search, read, create with identities, rename / merge attributes, delete.

Contacts are account-wide: whoever may read contacts sees all of the account's, whatever inboxes
they work in, unless the account sets ``contacts_by_inbox``: then a caller limited to some
inboxes (agents, supervisors) sees, reads and changes only the contacts that have a conversation
in those inboxes; the others answer 404 like contacts that do not exist. A contact such a caller
creates is in the reply to the create, and out of sight until it has a conversation they see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import Limit, PrefixSearch, record_id, refusal
from hub.actions.contacts import (
    MAX_ATTRIBUTES_BYTES,
    ContactRefused,
    create_contact,
    delete_contact,
    update_contact,
)
from hub.authz import Permission
from hub.events.types import Identity as IdentityEvent
from hub.fields import NO_NUL
from hub.logs import correlation_id
from hub.store.db import in_transaction
from hub.store.reads import BadCursor, contact_scope, get_contact, list_contacts

ContactName = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
ChannelName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Address = Annotated[str, msgspec.Meta(min_length=1, max_length=320, pattern=NO_NUL)]
MAX_DEPTH = 8


def _check_json(value: Any, depth: int = 0) -> None:
    """What jsonb stores: no NUL in keys or strings, not absurdly deep."""
    if depth > MAX_DEPTH:
        raise ValueError(f"attributes nest deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("attributes must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, depth)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


def _check_attributes(attributes: dict[str, Any]) -> None:
    _check_json(attributes)
    if len(msgspec.json.encode(attributes)) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"attributes exceed {MAX_ATTRIBUTES_BYTES} bytes")


class IdentityIn(msgspec.Struct, forbid_unknown_fields=True):
    channel: ChannelName
    address: Address


class NewContact(msgspec.Struct, forbid_unknown_fields=True):
    name: ContactName | None = None
    attributes: dict[str, Any] = {}
    identities: Annotated[list[IdentityIn], msgspec.Meta(max_length=20)] = []

    def __post_init__(self) -> None:
        _check_attributes(self.attributes)
        pairs = [(i.channel, i.address) for i in self.identities]
        if len(set(pairs)) != len(pairs):
            raise ValueError("an identity is listed twice")


class ContactChanges(msgspec.Struct, forbid_unknown_fields=True):
    """``attributes`` are merged into the stored ones; a key set to ``null`` is removed."""

    name: ContactName | UnsetType | None = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.attributes, UnsetType):
            _check_attributes(self.attributes)


class ContactQuery(msgspec.Struct, forbid_unknown_fields=True):
    q: PrefixSearch | None = None
    limit: Limit = 50
    cursor: str | None = None


class IdentityOut(msgspec.Struct):
    channel: str
    address: str


class Contact(msgspec.Struct):
    id: str
    name: str | None
    attributes: dict[str, Any]
    identities: list[IdentityOut]
    created_at: datetime
    updated_at: datetime


class ContactPage(msgspec.Struct):
    data: list[Contact]
    next_cursor: str | None


async def _scope(call: Call) -> frozenset[str] | None:
    who = call.principal
    return await contact_scope(call.hub.pool, who.account_id, who.inboxes)


async def _contact(call: Call, contact_id: str, *, scoped: bool = True) -> Contact:
    scope = await _scope(call) if scoped else None
    found = await get_contact(call.hub.pool, call.principal.account_id, contact_id, scope)
    if found is None:
        raise ApiError(404, "not_found", "no such contact")
    return msgspec.convert(found, Contact)


@route(
    "GET",
    "/api/v1/contacts",
    permission=Permission.CONTACTS_READ,
    summary="List or search contacts, newest first",
    tag="contacts",
    query=ContactQuery,
    reply=ContactPage,
)
async def list_contacts_route(call: Call) -> ContactPage:
    """``q`` matches the start of a name or of an address (phone number, email), ignoring case."""
    q: ContactQuery = call.query
    try:
        items, cursor = await list_contacts(
            call.hub.pool,
            call.principal.account_id,
            search=q.q,
            limit=q.limit,
            cursor=q.cursor,
            scope=await _scope(call),
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    return ContactPage(data=msgspec.convert(items, list[Contact]), next_cursor=cursor)


@route(
    "GET",
    "/api/v1/contacts/{contact_id}",
    permission=Permission.CONTACTS_READ,
    summary="One contact with its channel identities",
    tag="contacts",
    reply=Contact,
)
async def get_contact_route(call: Call) -> Contact:
    return await _contact(call, record_id(call, "contact_id"))


@route(
    "POST",
    "/api/v1/contacts",
    permission=Permission.CONTACTS_WRITE,
    summary="Create a contact",
    tag="contacts",
    body=NewContact,
    reply=Contact,
    status=201,
    errors=(409,),
)
async def create_contact_route(call: Call) -> Reply:
    """An identity (channel and address) already owned by a contact is a 409."""
    body: NewContact = call.body
    try:
        contact_id = await in_transaction(
            call.hub.pool,
            create_contact,
            principal=call.principal,
            name=body.name,
            attributes=body.attributes,
            identities=[IdentityEvent(i.channel, i.address) for i in body.identities],
            correlation_id=correlation_id.get(),
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc
    return Reply(await _contact(call, contact_id, scoped=False), status=201)


@route(
    "PATCH",
    "/api/v1/contacts/{contact_id}",
    permission=Permission.CONTACTS_WRITE,
    summary="Rename a contact or merge attributes into it",
    tag="contacts",
    body=ContactChanges,
    reply=Contact,
)
async def update_contact_route(call: Call) -> Contact:
    body: ContactChanges = call.body
    contact_id = record_id(call, "contact_id")
    await _contact(call, contact_id)  # 404 for a contact out of the caller's sight
    try:
        await in_transaction(
            call.hub.pool,
            update_contact,
            principal=call.principal,
            contact_id=contact_id,
            name=body.name,
            attributes=body.attributes,
            correlation_id=correlation_id.get(),
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc
    return await _contact(call, contact_id)


@route(
    "DELETE",
    "/api/v1/contacts/{contact_id}",
    permission=Permission.CONTACTS_DELETE,
    summary="Delete a contact that has no conversations",
    tag="contacts",
    status=204,
    errors=(409,),
)
async def delete_contact_route(call: Call) -> None:
    """A contact with conversations is a 409: erasing those is the CRM's job, not a delete."""
    try:
        await in_transaction(
            call.hub.pool,
            delete_contact,
            principal=call.principal,
            contact_id=record_id(call, "contact_id"),
            origin=call.origin,
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc
    except asyncpg.ForeignKeyViolationError as exc:  # a conversation arrived meanwhile
        raise ApiError(409, "conflict", "the contact has conversations") from exc


ROUTES = [
    list_contacts_route,
    get_contact_route,
    create_contact_route,
    update_contact_route,
    delete_contact_route,
]
