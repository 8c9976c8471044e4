"""Inboxes: one per channel account (an API integration, a WhatsApp number, ...).

Credentials are masked in every reply (``••••`` and at most its last four characters), and shown
only to callers who may manage inboxes; other callers get an empty map. The one exception is a
secret the hub made itself (an API inbox's ``signing_secret`` when none was given): the reply to
the create shows it in clear, once, because nobody else has it. ``webhook_url`` is what to give
the provider: the hub's configured public URL joined with ``webhook_path`` (``null`` when no
public URL is set).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from gateway.route import Call, Reply, route
from gateway.routes._common import Ids, ListQuery, Name, not_found, path_id, run, tidy, whole
from hub.actions.inboxes import (
    add_inbox,
    delete_inbox,
    set_inbox_enabled,
    set_inbox_members,
    update_inbox,
)
from hub.authz import Permission
from hub.contracts.registry import channel_registry
from hub.fields import NO_NUL
from hub.store.admin_reads import Db, get_inbox, list_inboxes
from hub.store.db import Conn

ReopenPolicy = Literal["reopen", "new"]
#: one of the registered channels (the OpenAPI document lists them: gateway/openapi.py)
ChannelName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
CredentialKey = Annotated[str, msgspec.Meta(pattern=whole(r"[a-z][a-z0-9_]{0,63}"))]
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=NO_NUL)]
SettingKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
# No ``pattern`` here: msgspec (0.19-0.22) corrupts memory for a union of a pattern-constrained
# str with a list of it (tests/api/test_schema_memory.py); NUL is refused in _check_settings.
SettingText = Annotated[str, msgspec.Meta(max_length=1000)]
# flat values jsonb stores as given: no NUL in text, integers exact in any JSON reader
SettingValue = (
    SettingText
    | Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]
    | float
    | bool
    | Annotated[list[SettingText], msgspec.Meta(max_length=50)]
    | None
)
Settings = Annotated[dict[SettingKey, SettingValue], msgspec.Meta(max_length=50)]


def _check_settings(settings: object) -> None:
    """PostgreSQL text cannot hold NUL; the schema cannot say so for these values."""
    if isinstance(settings, dict):
        for value in settings.values():
            texts = value if isinstance(value, list) else [value]
            if any(isinstance(t, str) and "\x00" in t for t in texts):
                raise ValueError("settings must not contain NUL characters")


Credentials = Annotated[dict[CredentialKey, Secret], msgspec.Meta(max_length=32)]


class InboxListQuery(ListQuery, forbid_unknown_fields=True):
    pass


class Mailbox(msgspec.Struct):
    """The mailbox an email inbox reads over IMAP, as its reader last found it."""

    #: ``connecting`` (not reached yet), ``connected``, or ``error`` (login refused, server
    #: unreachable: ``error`` says what, and the reader keeps retrying)
    state: Literal["connecting", "connected", "error"]
    folder: str
    error: str | None
    error_at: datetime | None
    #: when the reader last reached the mailbox (in ``error``: when it last tried)
    checked_at: datetime | None
    #: the last message (IMAP UID) taken in
    last_uid: int


class Inbox(msgspec.Struct):
    id: str
    channel: str
    name: str
    reopen_policy: ReopenPolicy
    settings: dict[str, Any]
    #: masked, except a secret the hub made, in the reply to the create
    credentials: dict[str, str]
    webhook_path: str
    webhook_url: str | None
    member_ids: list[str]
    team_ids: list[str]
    created_at: datetime
    updated_at: datetime
    #: ``false``: disabled by an administrator (``POST .../disable``): its webhooks are refused
    #: with 410 ``inbox_disabled``, nothing is sent through it, its conversations stay readable
    enabled: bool = True
    disabled_at: datetime | None = None
    #: how many conversations the inbox holds (one inbox's read only; ``null`` in lists): an
    #: inbox with conversations cannot be deleted, only disabled
    conversation_count: int | None = None
    #: an email inbox reading a mailbox over IMAP: its state; otherwise null
    mailbox: Mailbox | None = None


class InboxPage(msgspec.Struct):
    data: list[Inbox]
    next_cursor: str | None


class InboxNew(msgspec.Struct, forbid_unknown_fields=True):
    """``credentials``: what the channel needs (an API inbox gets a ``signing_secret`` made
    for it when none is given)."""

    name: Name
    channel: ChannelName
    reopen_policy: ReopenPolicy = "reopen"
    settings: Settings = msgspec.field(default_factory=dict)
    credentials: Credentials = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = tidy(self.name)
        _check_settings(self.settings)
        known = channel_registry().ids()
        if self.channel not in known:
            raise ValueError(f"unknown channel; one of: {', '.join(known)}")


class InboxPatch(msgspec.Struct, forbid_unknown_fields=True):
    """``settings`` replace the stored ones. ``credentials`` are merged into the stored ones:
    a key given with a value is set (replaced), a key given as ``null`` is removed, keys not
    given stay."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    reopen_policy: ReopenPolicy | msgspec.UnsetType = msgspec.UNSET
    settings: Settings | msgspec.UnsetType = msgspec.UNSET
    credentials: (
        Annotated[dict[CredentialKey, Secret | None], msgspec.Meta(max_length=32)]
        | msgspec.UnsetType
    ) = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = tidy(self.name)
        _check_settings(self.settings)


class InboxMembers(msgspec.Struct, forbid_unknown_fields=True):
    """The complete new set of members: users of the account."""

    user_ids: Ids


def _inbox(call: Call, row: dict[str, Any]) -> Inbox:
    base = call.hub.config.public_url
    url = base.rstrip("/") + row["webhook_path"] if base else None
    return msgspec.convert({**row, "webhook_url": url}, Inbox)


async def _read(call: Call, db: Db, inbox_id: str) -> Inbox:
    who = call.principal
    call.authorize(inbox_id, Permission.ACCOUNT_READ)
    row = await get_inbox(
        db,
        call.hub.box,
        who.account_id,
        inbox_id,
        with_credentials=who.can(Permission.INBOXES_MANAGE),
    )
    if row is None:
        raise not_found("inbox")
    return _inbox(call, row)


@route(
    "GET",
    "/api/v1/inboxes",
    permission=Permission.ACCOUNT_READ,
    summary="List the inboxes the caller sees",
    tag="inboxes",
    query=InboxListQuery,
    reply=InboxPage,
)
async def list_inboxes_route(call: Call) -> InboxPage:
    """Agents see the inboxes they are members of, supervisors also their teams' inboxes."""
    q: InboxListQuery = call.query
    who = call.principal
    items, cursor = await list_inboxes(
        call.hub.pool,
        call.hub.box,
        who.account_id,
        visible=who.inboxes,
        with_credentials=who.can(Permission.INBOXES_MANAGE),
        limit=q.limit,
        cursor=q.cursor,
    )
    return InboxPage([_inbox(call, row) for row in items], cursor)


@route(
    "GET",
    "/api/v1/inboxes/{inbox_id}",
    permission=Permission.ACCOUNT_READ,
    summary="One inbox the caller sees",
    tag="inboxes",
    reply=Inbox,
)
async def get_inbox_route(call: Call) -> Inbox:
    return await _read(call, call.hub.pool, path_id(call, "inbox_id", "inbox"))


@route(
    "POST",
    "/api/v1/inboxes",
    permission=Permission.INBOXES_MANAGE,
    summary="Create an inbox: the reply shows a secret the hub made in clear, once",
    tag="inboxes",
    body=InboxNew,
    reply=Inbox,
    status=201,
)
async def create_inbox_route(call: Call) -> Inbox:
    body: InboxNew = call.body
    who = call.principal

    async def create(conn: Conn) -> Inbox:
        made = await add_inbox(
            conn,
            call.hub.box,
            account_id=who.account_id,
            channel=body.channel,
            name=body.name,
            reopen_policy=body.reopen_policy,
            settings=body.settings,
            credentials=body.credentials,
            actor=who,
            origin=call.origin,
        )
        inbox = await _read(call, conn, made.id)
        return msgspec.structs.replace(inbox, credentials=made.credentials_shown())

    return await run(call, create)


@route(
    "PATCH",
    "/api/v1/inboxes/{inbox_id}",
    permission=Permission.INBOXES_MANAGE,
    summary="Change an inbox's name, reopen policy, settings or credentials",
    tag="inboxes",
    body=InboxPatch,
    reply=Inbox,
    errors=(409,),  # another inbox of the account has the name
)
async def patch_inbox_route(call: Call) -> Inbox:
    """New credentials are encrypted at rest and the reply shows them masked; the audit log
    names the keys that changed, never a value."""
    body: InboxPatch = call.body
    who = call.principal
    inbox_id = path_id(call, "inbox_id", "inbox")
    call.authorize(inbox_id)

    async def change(conn: Conn) -> Inbox:
        await update_inbox(
            conn,
            call.hub.box,
            account_id=who.account_id,
            inbox_id=inbox_id,
            actor=who,
            origin=call.origin,
            name=body.name if isinstance(body.name, str) else None,
            reopen_policy=body.reopen_policy if isinstance(body.reopen_policy, str) else None,
            settings=body.settings if isinstance(body.settings, dict) else None,
            credentials=body.credentials if isinstance(body.credentials, dict) else None,
        )
        return await _read(call, conn, inbox_id)

    inbox = await run(call, change)
    call.state.inboxes.invalidate(inbox_id)  # webhooks verify with the new credentials now
    return inbox


async def _switch(call: Call, enabled: bool) -> Inbox:
    who = call.principal
    inbox_id = path_id(call, "inbox_id", "inbox")
    call.authorize(inbox_id)

    async def switch(conn: Conn) -> Inbox:
        await set_inbox_enabled(
            conn,
            account_id=who.account_id,
            inbox_id=inbox_id,
            enabled=enabled,
            actor=who,
            origin=call.origin,
        )
        return await _read(call, conn, inbox_id)

    inbox = await run(call, switch)
    call.state.inboxes.invalidate(inbox_id)  # this gateway refuses its webhooks from now on
    return inbox


@route(
    "POST",
    "/api/v1/inboxes/{inbox_id}/disable",
    permission=Permission.INBOXES_MANAGE,
    summary="Disable an inbox: its webhooks are refused and nothing is sent; history is kept",
    tag="inboxes",
    reply=Inbox,
)
async def disable_inbox_route(call: Call) -> Inbox:
    """Webhooks to it are answered 410 ``inbox_disabled`` (what each provider does with that is
    in docs/channels.md), an email inbox's mailbox and a voice inbox's SIP lines are no longer
    read, replies are refused (422 ``inbox_disabled``; private notes still work) and replies
    already queued fail with that code. Its conversations stay readable. Disabling a disabled
    inbox changes nothing."""
    return await _switch(call, False)


@route(
    "POST",
    "/api/v1/inboxes/{inbox_id}/enable",
    permission=Permission.INBOXES_MANAGE,
    summary="Enable a disabled inbox again",
    tag="inboxes",
    reply=Inbox,
)
async def enable_inbox_route(call: Call) -> Inbox:
    """An email inbox's reader takes in what arrived in the mailbox meanwhile."""
    return await _switch(call, True)


@route(
    "DELETE",
    "/api/v1/inboxes/{inbox_id}",
    permission=Permission.INBOXES_MANAGE,
    summary="Delete an inbox that has no conversations",
    tag="inboxes",
    status=204,
    errors=(409,),
)
async def delete_inbox_route(call: Call) -> Reply:
    """409 ``inbox_has_conversations`` when the inbox has conversations: their history is never
    deleted with it (``conversation_count`` on the inbox says so beforehand); disable it
    instead."""
    who = call.principal
    inbox_id = path_id(call, "inbox_id", "inbox")
    call.authorize(inbox_id)
    await run(
        call,
        delete_inbox,
        account_id=who.account_id,
        inbox_id=inbox_id,
        actor=who,
        origin=call.origin,
    )
    call.state.inboxes.invalidate(inbox_id)
    call.state.auth.forget()  # members' visible inboxes changed
    return Reply(None, 204)


@route(
    "PUT",
    "/api/v1/inboxes/{inbox_id}/members",
    permission=Permission.INBOXES_MANAGE,
    summary="Replace the users who are members of the inbox",
    tag="inboxes",
    body=InboxMembers,
    reply=Inbox,
)
async def put_inbox_members_route(call: Call) -> Inbox:
    """422 with the unknown ids when some are not users of the account."""
    body: InboxMembers = call.body
    who = call.principal
    inbox_id = path_id(call, "inbox_id", "inbox")
    call.authorize(inbox_id)

    async def replace(conn: Conn) -> Inbox:
        await set_inbox_members(
            conn,
            account_id=who.account_id,
            inbox_id=inbox_id,
            user_ids=body.user_ids,
            actor=who,
            origin=call.origin,
        )
        return await _read(call, conn, inbox_id)

    inbox = await run(call, replace)
    call.state.auth.forget()
    return inbox


ROUTES = [
    list_inboxes_route,
    get_inbox_route,
    create_inbox_route,
    patch_inbox_route,
    delete_inbox_route,
    put_inbox_members_route,
    disable_inbox_route,
    enable_inbox_route,
]
