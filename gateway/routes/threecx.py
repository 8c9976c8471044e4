"""What 3CX's server-side CRM integration calls: contact lookup by number (the screen pop), contact
creation for an unknown caller, and call journaling when a call the PBX handled is over.

3CX sends the account token as ``Authorization: Bearer`` (a ``<Headers>`` value of the CRM
template, ``docs/channels/3cx-template.xml``), so these routes authenticate like every other.
3CX fills unknown template variables in as the variable's own name (``[AgentEmail]``); such a
value counts as empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import phonenumbers

from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import refusal, whole
from hub.actions.call_journal import JournalledCall, journal_call
from hub.actions.calls import CallRefused
from hub.actions.contacts import ContactRefused, create_contact
from hub.authz import Permission
from hub.events.types import CallDirection
from hub.events.types import Identity as IdentityEvent
from hub.fields import NO_NUL
from hub.logs import correlation_id
from hub.phone import to_e164
from hub.store.db import in_transaction
from hub.store.reads import load_inbox

PhoneText = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
#: ISO 3166 region code; empty: unset (a template parameter left blank)
Region = Annotated[str, msgspec.Meta(pattern=whole(r"(?:[A-Za-z]{2})?"))]
Text = Annotated[str, msgspec.Meta(max_length=255, pattern=NO_NUL)]
#: 3CX's [CallType]: answered or missed inbound, answered or unanswered outbound
CallType = Literal["Inbound", "Missed", "Outbound", "Notanswered"]
_DURATION = (
    r"(?:(?:(\d{1,3})\.)?(\d{1,4}):)?(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?|(\d{1,7}(?:\.\d{1,6})?)"
)
#: ``h:mm:ss`` (3CX's [Duration]), ``d.hh:mm:ss.fffffff`` (a .NET TimeSpan), ``mm:ss`` or seconds
Duration = Annotated[str, msgspec.Meta(max_length=32, pattern=whole(f"(?:{_DURATION})?"))]
_DURATION_RE = re.compile(_DURATION)
_UNFILLED = re.compile(r"\[[A-Za-z]+\]")
_EXTENSION = re.compile(r"[0-9A-Za-z*#+._-]{1,64}")
_INBOX_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_CALL_ID = re.compile(r"[\x21-\x7e]{1,128}")
#: the earliest call start the journal takes (and the latest: a day ahead of this clock)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class LookupQuery(msgspec.Struct, forbid_unknown_fields=True):
    #: the caller's number; without a country code it is read in ``region``
    number: PhoneText
    #: ISO 3166 region for national numbers (LK, IN); default: the first voice inbox's
    region: Region = ""


class ThreeCxContact(msgspec.Struct):
    id: str
    name: str | None
    first_name: str
    last_name: str
    #: E.164
    phone: str
    email: str | None
    #: the contact in the hub's console
    url: str


class ContactMatches(msgspec.Struct):
    """No match is an empty list (3CX's rule ``Any`` on ``contacts.id`` then pops nothing)."""

    contacts: list[ThreeCxContact]


class NewCaller(msgspec.Struct, forbid_unknown_fields=True):
    number: PhoneText
    name: Text = ""
    region: Region = ""


class JournalEntry(msgspec.Struct, forbid_unknown_fields=True):
    """A finished call, as the template's ReportCall scenario posts it (3CX's variables in
    brackets)."""

    #: [Number]
    number: PhoneText
    #: [CallType]
    call_type: CallType
    #: [CallStartTimeUTC], ISO 8601
    started_at: datetime
    #: [Duration]
    duration: Duration = ""
    #: [Agent]: the extension that took or made the call
    agent: Text = ""
    #: [AgentEmail]: finds the hub user when no user's phone is that extension
    agent_email: Text = ""
    #: [Name]: the caller's name as 3CX knows it (names a new contact)
    name: Text = ""
    #: the voice inbox to record the call in; empty: the first voice inbox
    inbox_id: Text = ""
    #: ISO 3166 region for national numbers; empty: the inbox's ``default_region``
    region: Text = ""
    #: the PBX's own id of the call, when it has one (3CX's journal sends none)
    call_id: Text = ""


class JournalReply(msgspec.Struct):
    call_id: str
    message_id: str
    conversation_id: str
    contact_id: str
    #: the hub user behind [Agent] / [AgentEmail], if any
    agent_id: str | None
    #: the call was journalled before (a retry): nothing new was stored
    duplicate: bool


def _filled(value: str) -> str:
    """A template value, or "" for one 3CX left unfilled."""
    value = value.strip()
    return "" if _UNFILLED.fullmatch(value) else value


def _region(given: str, status: int = 400) -> str | None:
    """``given`` as a region phonenumbers knows (400 in a query, 422 in a body), or None."""
    region = given.upper()
    if not region:
        return None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        code = "invalid_parameter" if status == 400 else "invalid_body"
        raise ApiError(status, code, "region is a two-letter region code (LK, IN)")
    return region


def _e164(raw: str, region: str | None) -> str | None:
    text = raw.strip()
    if raw[:1] == " " and text[:1].isdigit():  # a "+" the query did not escape reads as " "
        text = "+" + text
    return to_e164(text, region)


def _settings_region(settings: Mapping[str, Any] | None) -> str | None:
    if settings is None:
        return None
    region = str(settings.get("default_region", "LK")).upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


async def _default_region(call: Call) -> str | None:
    """The first voice inbox's ``default_region`` (its default, LK, when unset)."""
    settings = await call.hub.pool.fetchval(
        """SELECT settings FROM inboxes WHERE account_id = $1 AND channel = 'sip'
            ORDER BY created_at, id LIMIT 1""",
        call.principal.account_id,
    )
    return _settings_region(settings)


def _console(call: Call) -> str:
    base = call.hub.config.public_url
    if not base:
        scheme = "https" if call.state.is_https(call.request) else "http"
        base = f"{scheme}://{call.request.host}"
    return base.rstrip("/")


async def _matches(call: Call, e164: str) -> ContactMatches:
    rows = await call.hub.pool.fetch(
        """SELECT c.id, c.name,
                  (SELECT e.address FROM contact_identities e
                    WHERE e.contact_id = c.id AND e.channel = 'email'
                    ORDER BY e.address LIMIT 1) AS email
             FROM contact_identities i JOIN contacts c ON c.id = i.contact_id
            WHERE i.account_id = $1 AND i.channel = 'phone' AND i.address = $2""",
        call.principal.account_id,
        e164,
    )
    console = _console(call)
    found = []
    for row in rows:
        name = row["name"]
        first, _, last = (name or "").strip().partition(" ")
        found.append(
            ThreeCxContact(
                id=row["id"],
                name=name,
                first_name=first or e164,
                last_name=last.strip(),
                phone=e164,
                email=row["email"],
                url=f"{console}/#/contacts/{row['id']}",
            )
        )
    return ContactMatches(found)


@route(
    "GET",
    "/api/v1/integrations/3cx/lookup",
    permission=Permission.CONTACTS_READ,
    summary="3CX: the contact with this phone number, with a link to it in the console",
    tag="integrations",
    query=LookupQuery,
    reply=ContactMatches,
)
async def threecx_lookup_route(call: Call) -> ContactMatches:
    """An unknown number answers an empty list; a number that cannot be one is 400."""
    q: LookupQuery = call.query
    region = _region(q.region) or await _default_region(call)
    e164 = _e164(q.number, region)
    if e164 is None:
        raise ApiError(400, "invalid_number", "number is not a phone number")
    return await _matches(call, e164)


@route(
    "POST",
    "/api/v1/integrations/3cx/contacts",
    permission=Permission.CONTACTS_WRITE,
    summary="3CX: create a contact for an unknown caller's number",
    tag="integrations",
    body=NewCaller,
    reply=ContactMatches,
    status=201,
    replays=True,
)
async def threecx_create_contact_route(call: Call) -> ContactMatches | Reply:
    """A number that already belongs to a contact answers that contact (200)."""
    body: NewCaller = call.body
    region = _region(body.region, 422) or await _default_region(call)
    e164 = _e164(body.number, region)
    if e164 is None:
        raise ApiError(422, "invalid_number", "number is not a phone number")
    name = _filled(body.name) or None
    try:
        await in_transaction(
            call.hub.pool,
            create_contact,
            principal=call.principal,
            name=name,
            attributes={},
            identities=[IdentityEvent("phone", e164)],
            correlation_id=correlation_id.get(),
        )
    except ContactRefused as exc:
        if exc.code != "conflict":
            raise ApiError(422, exc.code, exc.message, exc.details) from exc
        return Reply(await _matches(call, e164), 200)
    return await _matches(call, e164)


def _seconds(duration: str) -> float:
    if not duration:
        return 0.0
    match = _DURATION_RE.fullmatch(duration)
    if match is None:  # the schema's pattern is the same expression
        raise ApiError(422, "invalid_body", "duration is h:mm:ss or seconds")
    days, hours, minutes, secs, fraction, plain = match.groups()
    if plain is not None:
        return float(plain)
    total = int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + int(secs)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


async def _voice_inbox(call: Call, wanted: str) -> Any:
    """The inbox to record in: the one named (404 if the caller cannot see it, 422 if it is not
    a voice inbox), else the first voice inbox the caller sees (422 if there is none)."""
    who = call.principal
    pool = call.hub.pool
    if wanted:
        if _INBOX_ID.fullmatch(wanted) is None:
            raise ApiError(404, "not_found", "no such inbox")
        row = await pool.fetchrow(
            "SELECT id, channel FROM inboxes WHERE id = $1 AND account_id = $2",
            wanted,
            who.account_id,
        )
        if row is None:
            raise ApiError(404, "not_found", "no such inbox")
        call.authorize(row["id"])
        if row["channel"] != "sip":
            raise ApiError(422, "not_voice", "calls are journalled in a voice (SIP) inbox")
        return row["id"]
    inbox_id = await pool.fetchval(
        """SELECT id FROM inboxes
            WHERE account_id = $1 AND channel = 'sip'
              AND ($2::text[] IS NULL OR id = ANY($2::text[]))
            ORDER BY created_at, id LIMIT 1""",
        who.account_id,
        sorted(who.inboxes) if who.inboxes is not None else None,
    )
    if inbox_id is None:
        raise ApiError(422, "no_voice_inbox", "there is no voice (SIP) inbox to journal calls in")
    return inbox_id


@route(
    "POST",
    "/api/v1/integrations/3cx/journal",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="3CX: record a finished call in a voice inbox, on the contact's timeline",
    tag="integrations",
    body=JournalEntry,
    reply=JournalReply,
    status=201,
    replays=True,
    errors=(404,),
)
async def threecx_journal_route(call: Call) -> JournalReply | Reply:
    """The call becomes a ``call`` message in the contact's conversation, a ``calls`` row
    (ended) and ``call.ended`` on the timeline. A report of the same call again (same number,
    start and direction, or the same ``call_id``) answers the first with 200."""
    body: JournalEntry = call.body
    inbox_id = await _voice_inbox(call, _filled(body.inbox_id))
    inbox = await load_inbox(call.hub.pool, call.hub.box, inbox_id)
    if inbox is None:  # deleted meanwhile
        raise ApiError(404, "not_found", "no such inbox")
    given = _filled(body.region)
    if given and len(given) != 2:
        raise ApiError(422, "invalid_body", "region is a two-letter region code (LK, IN)")
    region = _region(given, 422) or _settings_region(inbox.settings)
    e164 = _e164(body.number, region)
    if e164 is None:
        raise ApiError(422, "invalid_number", "number is not a phone number")
    started = body.started_at if body.started_at.tzinfo else body.started_at.replace(tzinfo=UTC)
    if not _EPOCH <= started <= datetime.now(UTC) + timedelta(days=1):
        raise ApiError(422, "invalid_body", "started_at is not a time a call could have started")
    agent = _filled(body.agent)
    if agent and _EXTENSION.fullmatch(agent) is None:
        raise ApiError(422, "invalid_body", "agent is an extension such as 101")
    pbx_call_id = _filled(body.call_id)
    if pbx_call_id and _CALL_ID.fullmatch(pbx_call_id) is None:
        raise ApiError(422, "invalid_body", "call_id is up to 128 printable ASCII characters")
    call_type = body.call_type
    try:
        result = await journal_call(
            call.hub,
            JournalledCall(
                inbox=inbox,
                number=e164,
                direction=(
                    CallDirection.INBOUND
                    if call_type in ("Inbound", "Missed")
                    else CallDirection.OUTBOUND
                ),
                answered=call_type in ("Inbound", "Outbound"),
                duration_s=_seconds(body.duration),
                started_at=started,
                name=_filled(body.name) or None,
                agent_extension=agent or None,
                agent_email=_filled(body.agent_email) or None,
                pbx_call_id=pbx_call_id or None,
            ),
        )
    except CallRefused as exc:
        raise refusal(exc) from exc
    reply = JournalReply(
        call_id=result.call_id,
        message_id=result.message_id,
        conversation_id=result.conversation_id,
        contact_id=result.contact_id,
        agent_id=result.agent_id,
        duplicate=result.duplicate,
    )
    return Reply(reply, 200) if result.duplicate else reply


ROUTES = [threecx_lookup_route, threecx_create_contact_route, threecx_journal_route]
