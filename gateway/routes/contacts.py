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

from crm.attributes import definitions, filter_value
from crm.contacts import create_checked, survivor_of, update_checked
from crm.merge import merge_contacts, suggestions
from crm.notes import add_note
from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import Limit, PrefixSearch, record_id, refusal
from hub.actions.contacts import MAX_ATTRIBUTES_BYTES, ContactRefused, delete_contact
from hub.authz import Permission
from hub.events.types import Identity as IdentityEvent
from hub.fields import NO_NUL
from hub.logs import correlation_id
from hub.store.db import in_transaction
from hub.store.reads import BadCursor, contact_scope, get_contact, list_contacts

ContactName = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
ChannelName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Address = Annotated[str, msgspec.Meta(min_length=1, max_length=320, pattern=NO_NUL)]
#: a record id as a body or query value (never a database error for a stray byte)
RecordId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,64}$")]
AttributeKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
AttributeValue = Annotated[str, msgspec.Meta(max_length=1000, pattern=NO_NUL)]
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


def check_attribute_json(attributes: dict[str, Any]) -> None:
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
        check_attribute_json(self.attributes)
        pairs = [(i.channel, i.address) for i in self.identities]
        if len(set(pairs)) != len(pairs):
            raise ValueError("an identity is listed twice")


class ContactChanges(msgspec.Struct, forbid_unknown_fields=True):
    """``attributes`` are merged into the stored ones; a key set to ``null`` is removed."""

    name: ContactName | UnsetType | None = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET
    company_id: RecordId | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.attributes, UnsetType):
            check_attribute_json(self.attributes)


class ContactQuery(msgspec.Struct, forbid_unknown_fields=True):
    q: PrefixSearch | None = None
    #: a defined attribute's key, with ``value``: contacts whose attribute has that value
    attribute: AttributeKey | None = None
    value: AttributeValue | None = None
    company_id: RecordId | None = None
    limit: Limit = 50
    cursor: str | None = None


class IdentityOut(msgspec.Struct):
    channel: str
    address: str


class Contact(msgspec.Struct):
    id: str
    name: str | None
    attributes: dict[str, Any]
    company_id: str | None
    identities: list[IdentityOut]
    created_at: datetime
    updated_at: datetime


class ContactPage(msgspec.Struct):
    data: list[Contact]
    next_cursor: str | None


async def _scope(call: Call) -> frozenset[str] | None:
    who = call.principal
    return await contact_scope(call.hub.pool, who.account_id, who.inboxes)


async def _live(call: Call, contact_id: str) -> str:
    """The contact that answers for ``contact_id``: a merged contact's survivor."""
    found = await survivor_of(call.hub.pool, call.principal.account_id, contact_id)
    if found is None:
        raise ApiError(404, "not_found", "no such contact")
    return found


async def _contact(call: Call, contact_id: str, *, scoped: bool = True) -> Contact:
    scope = await _scope(call) if scoped else None
    contact_id = await _live(call, contact_id)
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
    errors=(422,),  # an attribute filter the account does not define, or without a value
)
async def list_contacts_route(call: Call) -> ContactPage:
    """``q`` matches the start of a name or of an address (phone number, email), ignoring case;
    ``attribute`` and ``value`` a defined attribute's value (``value`` read by its type);
    ``company_id`` a company's contacts."""
    q: ContactQuery = call.query
    attribute: tuple[str, Any] | None = None
    if (q.attribute is None) != (q.value is None):
        raise ApiError(422, "invalid_query", "attribute and value go together")
    if q.attribute is not None and q.value is not None:
        defined = (await definitions(call.hub.pool, call.principal.account_id)).get(q.attribute)
        if defined is None:
            raise ApiError(
                422, "unknown_attribute", f"no attribute {q.attribute!r} is defined",
                {"attribute": q.attribute},
            )  # fmt: skip
        try:
            attribute = (q.attribute, filter_value(defined, q.value))
        except ContactRefused as exc:
            raise refusal(exc) from exc
    try:
        items, cursor = await list_contacts(
            call.hub.pool,
            call.principal.account_id,
            search=q.q,
            limit=q.limit,
            cursor=q.cursor,
            scope=await _scope(call),
            attribute=attribute,
            company_id=q.company_id,
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
            create_checked,
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
    contact_id = (await _contact(call, record_id(call, "contact_id"))).id  # 404 out of sight
    try:
        await in_transaction(
            call.hub.pool,
            update_checked,
            principal=call.principal,
            contact_id=contact_id,
            name=body.name,
            attributes=body.attributes,
            company_id=body.company_id,
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


class MergeBody(msgspec.Struct, forbid_unknown_fields=True):
    #: the contact folded into the one named in the path (which survives)
    contact_id: RecordId


class Merged(msgspec.Struct):
    contact: Contact
    merged_contact_id: str
    identities: list[IdentityOut]
    conversations: list[str]
    resolved_conversations: list[str]
    calls: list[str]
    notes: list[str]
    attributes: list[str]


@route(
    "POST",
    "/api/v1/contacts/{contact_id}/merge",
    permission=Permission.CONTACTS_WRITE,
    summary="Merge another contact into this one",
    tag="contacts",
    body=MergeBody,
    reply=Merged,
    errors=(409,),
)
async def merge_contact_route(call: Call) -> Merged:
    """Identities, conversations, calls, notes and missing attributes move here in one
    transaction; the other id keeps answering with this contact. Both must be in the caller's
    sight; merging a contact into itself is a 422, an already merged one a 409."""
    body: MergeBody = call.body
    survivor = (await _contact(call, record_id(call, "contact_id"))).id
    other = await get_contact(
        call.hub.pool, call.principal.account_id, body.contact_id, await _scope(call)
    )
    if other is None:
        raise ApiError(404, "not_found", "no such contact")
    try:
        moved = await in_transaction(
            call.hub.pool,
            merge_contacts,
            principal=call.principal,
            survivor_id=survivor,
            merged_id=body.contact_id,
            origin=call.origin,
            correlation_id=correlation_id.get(),
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc
    return msgspec.convert(
        {**moved, "contact": await _contact(call, survivor, scoped=False)}, Merged
    )


class SuggestionQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Limit = 50


class Suggestion(msgspec.Struct):
    contact_ids: list[str]
    #: pairs of identities (one of each contact) with the same address, ignoring case
    shared: list[list[IdentityOut]]


class SuggestionList(msgspec.Struct):
    data: list[Suggestion]


@route(
    "GET",
    "/api/v1/contact-merge-suggestions",
    permission=Permission.CONTACTS_READ,
    summary="Pairs of contacts that share an address and may be one person",
    tag="contacts",
    query=SuggestionQuery,
    reply=SuggestionList,
)
async def merge_suggestions_route(call: Call) -> SuggestionList:
    q: SuggestionQuery = call.query
    found = await suggestions(call.hub.pool, call.principal.account_id, await _scope(call), q.limit)
    return SuggestionList(data=msgspec.convert(found, list[Suggestion]))


NoteText = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=NO_NUL)]


class NewNote(msgspec.Struct, forbid_unknown_fields=True):
    content: NoteText


class Note(msgspec.Struct):
    id: str
    contact_id: str
    author_type: str
    author_id: str | None
    content: str
    created_at: datetime


class NoteList(msgspec.Struct):
    data: list[Note]


_NOTE_COLUMNS = "id, contact_id, author_type, author_id, content, created_at"


@route(
    "GET",
    "/api/v1/contacts/{contact_id}/notes",
    permission=Permission.CONTACTS_READ,
    summary="A contact's notes, oldest first",
    tag="contacts",
    reply=NoteList,
)
async def list_notes_route(call: Call) -> NoteList:
    contact_id = (await _contact(call, record_id(call, "contact_id"))).id
    rows = await call.hub.pool.fetch(
        f"""SELECT {_NOTE_COLUMNS} FROM contact_notes
             WHERE contact_id = $1 AND account_id = $2 ORDER BY id""",
        contact_id,
        call.principal.account_id,
    )
    return NoteList(data=msgspec.convert([dict(r) for r in rows], list[Note]))


@route(
    "POST",
    "/api/v1/contacts/{contact_id}/notes",
    permission=Permission.CONTACTS_WRITE,
    summary="Add a note to a contact",
    tag="contacts",
    body=NewNote,
    reply=Note,
    status=201,
)
async def add_note_route(call: Call) -> Reply:
    """The note records who wrote it (a user, or an API token) and when."""
    body: NewNote = call.body
    contact_id = (await _contact(call, record_id(call, "contact_id"))).id
    try:
        note_id = await in_transaction(
            call.hub.pool,
            add_note,
            principal=call.principal,
            contact_id=contact_id,
            content=body.content,
            correlation_id=correlation_id.get(),
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc
    row = await call.hub.pool.fetchrow(
        f"SELECT {_NOTE_COLUMNS} FROM contact_notes WHERE id = $1", note_id
    )
    return Reply(msgspec.convert(dict(row or {}), Note), status=201)


ROUTES = [
    merge_suggestions_route,
    merge_contact_route,
    list_notes_route,
    add_note_route,
    list_contacts_route,
    get_contact_route,
    create_contact_route,
    update_contact_route,
    delete_contact_route,
]
