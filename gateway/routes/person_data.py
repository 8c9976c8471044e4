"""Data protection for one person: everything the hub holds about a contact as a zip, and
erasure. Administrators only (``account:manage`` for the export, ``contacts:delete`` for
erasure), both in the audit log. A merged contact's id answers for its survivor."""

from __future__ import annotations

import msgspec
from aiohttp import web

from crm.contacts import survivor_of
from crm.person_export import person_zip
from gateway.responses import ApiError
from gateway.route import Call, route
from gateway.routes._common import record_id, refusal
from hub import audit
from hub.actions.contacts import ContactRefused
from hub.actions.erasure import erase_contact
from hub.authz import Permission
from hub.logs import correlation_id
from hub.media import media_store
from hub.store.db import in_transaction


async def _person(call: Call) -> str:
    found = await survivor_of(
        call.hub.pool, call.principal.account_id, record_id(call, "contact_id")
    )
    if found is None:
        raise ApiError(404, "not_found", "no such contact")
    return found


@route(
    "GET",
    "/api/v1/contacts/{contact_id}/data-export",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Everything the hub holds about a person, as a zip, streamed",
    tag="crm",
    file="application/zip",
)
async def person_export_route(call: Call) -> web.StreamResponse:
    """``contact.json`` (identities, attributes, company, merged contacts), ``notes.json``,
    ``conversations.json``, ``messages.jsonl`` (one message a line), ``calls.json``,
    ``media.json`` and every stored file under ``media/``. In the audit log."""
    contact_id = await _person(call)
    async with call.hub.pool.acquire() as conn:
        await audit.record(
            conn,
            account_id=call.principal.account_id,
            actor=call.principal,
            action="contact.data_exported",
            object_type="contact",
            object_id=contact_id,
            origin=call.origin,
        )
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="contact-{contact_id}.zip"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(call.request)
    store = media_store(call.hub.config.data_dir)
    # one connection and a repeatable-read snapshot: the files listed are the messages exported
    async with (
        call.hub.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        async for piece in person_zip(conn, store, call.principal.account_id, contact_id):
            if piece:
                await response.write(piece)
    await response.write_eof()
    return response


class EventCopies(msgspec.Struct):
    """Stored copies of the person's events whose content was blanked."""

    event_log: int
    realtime_events: int
    outbox: int
    webhook_deliveries: int


class Erased(msgspec.Struct):
    contact_id: str
    merged_contacts: int
    conversations: int
    messages: int
    files: int
    calls: int
    notes: int
    identities: int
    #: documents of the PostgreSQL archive (raw webhooks, profile); MongoDB's go right after, in
    #: the archive consumer
    archived_documents: int
    event_copies: EventCopies


@route(
    "POST",
    "/api/v1/contacts/{contact_id}/erase",
    permission=Permission.CONTACTS_DELETE,
    summary="Erase a person's data: message content, files, notes, identities, name",
    tag="crm",
    reply=Erased,
    errors=(409,),
)
async def erase_contact_route(call: Call) -> Erased:
    """In one transaction: the content of every message of the person's conversations and
    their files, their notes and identities (a new message from the same address starts a new
    contact), name, attributes and company, and the same content in the hub's copies of their
    events. The contact and its conversations stay, anonymised; the audit log keeps who erased
    what, and a ``contact.erased`` event tells consumers to forget. A second erasure, or a
    merged contact's id (erase its survivor), is a 409."""
    try:
        erased = await in_transaction(
            call.hub.pool,
            erase_contact,
            principal=call.principal,
            contact_id=record_id(call, "contact_id"),
            store=media_store(call.hub.config.data_dir),
            origin=call.origin,
            correlation_id=correlation_id.get(),
        )
    except ContactRefused as exc:
        if exc.code == "already_erased":
            raise ApiError(409, exc.code, exc.message) from exc
        raise refusal(exc) from exc
    return msgspec.convert(erased, Erased)


ROUTES = [person_export_route, erase_contact_route]
