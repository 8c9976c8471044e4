"""The CRM's account-wide records: custom attribute definitions for contacts, and companies
(with their contacts and conversations). Writes go through the ``crm`` part in one transaction;
what a caller limited to some inboxes sees of a company's contacts and conversations follows the
contacts routes (``contacts_by_inbox``) and the conversations routes (their inboxes)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from crm.attributes import define, definitions, undefine
from crm.companies import COLUMNS, create_company, delete_company, update_company
from crm.export import HEADER, contact_pages, csv_chunk, csv_lines, json_chunk
from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import Limit, record_id, refusal
from gateway.routes.contacts import (
    ContactPage,
    ContactQuery,
    check_attribute_json,
    list_contacts_route,
)
from hub import audit
from hub.actions.contacts import ContactRefused
from hub.authz import Permission
from hub.fields import NO_NUL
from hub.store.db import in_transaction
from hub.store.reads import contact_scope

_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
AttributeKey = Annotated[str, msgspec.Meta(pattern=f"^{_KEY.pattern}$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
Option = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
CompanyName = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
Domain = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.-]{1,253}$")]


AttributeType = Literal["text", "number", "date", "list", "checkbox", "link"]


class AttributeDefinition(msgspec.Struct, forbid_unknown_fields=True):
    """``type``: text, number, date (YYYY-MM-DD), list (one of ``options``), checkbox
    (true/false) or link (an http(s) URL)."""

    key: AttributeKey
    label: Label
    type: AttributeType
    options: Annotated[list[Option], msgspec.Meta(max_length=100)] = []


class DefinitionList(msgspec.Struct):
    data: list[AttributeDefinition]


@route(
    "GET",
    "/api/v1/contact-attributes",
    permission=Permission.CONTACTS_READ,
    summary="The account's contact attribute definitions",
    tag="crm",
    reply=DefinitionList,
)
async def list_definitions_route(call: Call) -> DefinitionList:
    found = await definitions(call.hub.pool, call.principal.account_id)
    return DefinitionList(
        data=msgspec.convert(
            [dataclasses.asdict(d) for d in found.values()], list[AttributeDefinition]
        )
    )


@route(
    "POST",
    "/api/v1/contact-attributes",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Define a typed contact attribute",
    tag="crm",
    body=AttributeDefinition,
    reply=AttributeDefinition,
    status=201,
    errors=(409,),
)
async def define_route(call: Call) -> Reply:
    """Contacts' values already stored under the key are not re-checked; every later write is."""
    body: AttributeDefinition = call.body
    try:
        await in_transaction(
            call.hub.pool,
            define,
            principal=call.principal,
            key=body.key,
            label=body.label,
            type=body.type,
            options=body.options,
            origin=call.origin,
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc
    return Reply(body, status=201)


@route(
    "DELETE",
    "/api/v1/contact-attributes/{attribute}",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Remove an attribute definition (contacts keep their values)",
    tag="crm",
    status=204,
)
async def undefine_route(call: Call) -> None:
    if not _KEY.fullmatch(call.path("attribute")):
        raise ApiError(404, "not_found", "no such attribute")
    try:
        await in_transaction(
            call.hub.pool,
            undefine,
            principal=call.principal,
            key=call.path("attribute"),
            origin=call.origin,
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc


class Company(msgspec.Struct):
    id: str
    name: str
    domain: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CompanyList(msgspec.Struct):
    data: list[Company]


class NewCompany(msgspec.Struct, forbid_unknown_fields=True):
    name: CompanyName
    domain: Domain | None = None
    attributes: dict[str, Any] = {}

    def __post_init__(self) -> None:
        check_attribute_json(self.attributes)


class CompanyChanges(msgspec.Struct, forbid_unknown_fields=True):
    name: CompanyName | UnsetType = UNSET
    domain: Domain | UnsetType | None = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.attributes, UnsetType):
            check_attribute_json(self.attributes)


class CompanyQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Limit = 200


async def _company(call: Call, company_id: str) -> Company:
    row = await call.hub.pool.fetchrow(
        f"SELECT {COLUMNS} FROM companies WHERE id = $1 AND account_id = $2",
        company_id,
        call.principal.account_id,
    )
    if row is None:
        raise ApiError(404, "not_found", "no such company")
    return msgspec.convert(dict(row), Company)


@route(
    "GET",
    "/api/v1/companies",
    permission=Permission.CONTACTS_READ,
    summary="The account's companies, by name",
    tag="crm",
    query=CompanyQuery,
    reply=CompanyList,
)
async def list_companies_route(call: Call) -> CompanyList:
    q: CompanyQuery = call.query
    rows = await call.hub.pool.fetch(
        f"SELECT {COLUMNS} FROM companies WHERE account_id = $1 ORDER BY name, id LIMIT $2",
        call.principal.account_id,
        q.limit,
    )
    return CompanyList(data=msgspec.convert([dict(r) for r in rows], list[Company]))


@route(
    "POST",
    "/api/v1/companies",
    permission=Permission.CONTACTS_WRITE,
    summary="Create a company",
    tag="crm",
    body=NewCompany,
    reply=Company,
    status=201,
    errors=(409,),
)
async def create_company_route(call: Call) -> Reply:
    """A second company with the same domain is a 409."""
    body: NewCompany = call.body
    try:
        company_id = await in_transaction(
            call.hub.pool,
            create_company,
            principal=call.principal,
            name=body.name,
            domain=body.domain,
            attributes=body.attributes,
            origin=call.origin,
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc
    return Reply(await _company(call, company_id), status=201)


@route(
    "GET",
    "/api/v1/companies/{company_id}",
    permission=Permission.CONTACTS_READ,
    summary="One company",
    tag="crm",
    reply=Company,
)
async def get_company_route(call: Call) -> Company:
    return await _company(call, record_id(call, "company_id"))


@route(
    "PATCH",
    "/api/v1/companies/{company_id}",
    permission=Permission.CONTACTS_WRITE,
    summary="Rename a company, change its domain or merge attributes into it",
    tag="crm",
    body=CompanyChanges,
    reply=Company,
    errors=(409,),
)
async def update_company_route(call: Call) -> Company:
    body: CompanyChanges = call.body
    company_id = record_id(call, "company_id")
    try:
        await in_transaction(
            call.hub.pool,
            update_company,
            principal=call.principal,
            company_id=company_id,
            name=body.name,
            domain=body.domain,
            attributes=body.attributes,
            origin=call.origin,
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc
    return await _company(call, company_id)


@route(
    "DELETE",
    "/api/v1/companies/{company_id}",
    permission=Permission.CONTACTS_DELETE,
    summary="Delete a company; its contacts stay, without one",
    tag="crm",
    status=204,
)
async def delete_company_route(call: Call) -> None:
    try:
        await in_transaction(
            call.hub.pool,
            delete_company,
            principal=call.principal,
            company_id=record_id(call, "company_id"),
            origin=call.origin,
        )
    except ContactRefused as exc:
        raise refusal(exc) from exc


@route(
    "GET",
    "/api/v1/companies/{company_id}/contacts",
    permission=Permission.CONTACTS_READ,
    summary="A company's contacts, newest first",
    tag="crm",
    query=ContactQuery,
    reply=ContactPage,
    errors=(422,),
)
async def company_contacts_route(call: Call) -> ContactPage:
    """Takes the contact list's query (search, attribute filter, paging)."""
    company = await _company(call, record_id(call, "company_id"))
    q: ContactQuery = call.query
    call.query = msgspec.structs.replace(q, company_id=company.id)
    page: ContactPage = await list_contacts_route.handler(call)
    return page


class CompanyConversation(msgspec.Struct):
    id: str
    inbox_id: str
    contact_id: str
    status: str
    assignee_id: str | None
    last_activity_at: datetime


class CompanyConversationList(msgspec.Struct):
    data: list[CompanyConversation]


@route(
    "GET",
    "/api/v1/companies/{company_id}/conversations",
    permission=Permission.CONVERSATIONS_READ,
    summary="Conversations of a company's contacts, latest activity first",
    tag="crm",
    query=CompanyQuery,
    reply=CompanyConversationList,
)
async def company_conversations_route(call: Call) -> CompanyConversationList:
    """Only conversations of inboxes the caller sees."""
    company = await _company(call, record_id(call, "company_id"))
    q: CompanyQuery = call.query
    inboxes = call.principal.inboxes
    rows = await call.hub.pool.fetch(
        """SELECT v.id, v.inbox_id, v.contact_id, v.status, v.assignee_id, v.last_activity_at
             FROM conversations v JOIN contacts c ON c.id = v.contact_id
            WHERE c.company_id = $1 AND v.account_id = $2
              AND ($3::text[] IS NULL OR v.inbox_id = ANY($3::text[]))
            ORDER BY v.last_activity_at DESC, v.id DESC LIMIT $4""",
        company.id,
        call.principal.account_id,
        None if inboxes is None else sorted(inboxes),
        q.limit,
    )
    return CompanyConversationList(
        data=msgspec.convert([dict(r) for r in rows], list[CompanyConversation])
    )


ROUTES = [
    list_definitions_route,
    define_route,
    undefine_route,
    list_companies_route,
    create_company_route,
    get_company_route,
    update_company_route,
    delete_company_route,
    company_contacts_route,
    company_conversations_route,
]


class ExportQuery(msgspec.Struct, forbid_unknown_fields=True):
    format: Literal["csv", "json"] = "csv"


@route(
    "GET",
    "/api/v1/contact-export",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Every contact as CSV or a JSON array, streamed",
    tag="crm",
    query=ExportQuery,
    csv=True,
)
async def export_contacts_route(call: Call) -> web.StreamResponse:
    """Administrators only (it is the whole address book); the export is in the audit log.
    CSV cells that would run as a spreadsheet formula start with ``'``."""
    q: ExportQuery = call.query
    await call.hub.pool.execute("SELECT 1")  # fail before the headers go out if the store is down
    async with call.hub.pool.acquire() as conn:
        await audit.record(
            conn,
            account_id=call.principal.account_id,
            actor=call.principal,
            action="contacts.exported",
            object_type="contact",
            object_id=None,
            origin=call.origin,
            details={"format": q.format},
        )
    scope = await contact_scope(call.hub.pool, call.principal.account_id, call.principal.inboxes)

    async def pages() -> AsyncIterator[list[dict[str, Any]]]:
        async with call.hub.pool.acquire() as conn:
            async for page in contact_pages(conn, call.principal.account_id, scope):
                yield page

    return await stream_contacts(call, pages(), q.format, "contacts")


async def stream_contacts(
    call: Call,
    pages: AsyncIterator[list[dict[str, Any]]],
    format: Literal["csv", "json"],
    name: str,
) -> web.StreamResponse:
    """Contacts out as CSV (formula cells defused) or one JSON array, a page at a time."""
    csv_out = format == "csv"
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8" if csv_out else "application/json",
            "Content-Disposition": f'attachment; filename="{name}.{format}"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(call.request)
    first = True
    if not csv_out:
        await response.write(b"[")
    async for page in pages:
        await response.write(csv_chunk(page, first) if csv_out else json_chunk(page, first))
        first = False
    if csv_out and first:
        await response.write(csv_lines([list(HEADER)]))
    if not csv_out:
        await response.write(b"]")
    await response.write_eof()
    return response


ROUTES.append(export_contacts_route)
