"""Conversations and their messages: list, read, reply, private notes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from hub.actions.messages import MessageRefused, create_agent_message
from hub.authz import Permission
from hub.logs import correlation_id
from hub.store.db import in_transaction
from hub.store.reads import (
    BadCursor,
    account_inbox_ids,
    conversation_exists,
    inbox_counters,
    list_conversations,
    list_messages,
)

Status = Literal["open", "pending", "snoozed", "resolved"]
Priority = Literal["low", "medium", "high", "urgent"]


class ConversationQuery(msgspec.Struct, forbid_unknown_fields=True):
    status: Status | None = None
    inbox_id: str | None = None
    limit: int = msgspec.field(default=50)
    cursor: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 200:
            raise ValueError("limit must be from 1 to 200")


class Conversation(msgspec.Struct):
    id: str
    inbox_id: str
    contact_id: str
    contact_name: str | None
    status: Status
    assignee_id: str | None
    team_id: str | None
    labels: list[str]
    priority: Priority | None
    snoozed_until: datetime | None
    messages_count: int
    last_message_at: datetime | None
    last_activity_at: datetime
    created_at: datetime
    unread_count: int = 0


class InboxCounters(msgspec.Struct):
    inbox_id: str
    open: int
    pending: int
    snoozed: int
    unassigned: int
    assigned: dict[str, int]


class ConversationPage(msgspec.Struct):
    data: list[Conversation]
    next_cursor: str | None
    inboxes: list[InboxCounters]


class PageQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: int = 50
    cursor: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 200:
            raise ValueError("limit must be from 1 to 200")


class Message(msgspec.Struct):
    id: str
    conversation_id: str
    inbox_id: str
    direction: Literal["inbound", "outbound"]
    private: bool
    sender_type: str
    sender_id: str | None
    content: str | None
    content_type: str
    attachments: list[dict[str, Any]]
    provider_message_id: str | None
    status: str
    error_code: str | None
    error_message: str | None
    sent_at: datetime | None
    created_at: datetime


class MessagePage(msgspec.Struct):
    data: list[Message]
    next_cursor: str | None


class NewMessage(msgspec.Struct, forbid_unknown_fields=True):
    content: str
    private: bool = False
    client_id: str | None = msgspec.field(default=None)

    def __post_init__(self) -> None:
        if self.client_id is not None and not 0 < len(self.client_id) <= 128:
            raise ValueError("client_id must have 1 to 128 characters")


class SentMessage(msgspec.Struct):
    id: str
    conversation_id: str
    status: str
    private: bool
    duplicate: bool


@route(
    "GET",
    "/api/v1/conversations",
    permission=Permission.CONVERSATIONS_READ,
    summary="List conversations, newest activity first, with the inbox counters",
    tag="conversations",
    query=ConversationQuery,
    reply=ConversationPage,
)
async def list_conversations_route(call: Call) -> ConversationPage:
    """Only conversations in inboxes the caller may see; ``unread_count`` is the caller's."""
    q: ConversationQuery = call.query
    who = call.principal
    pool = call.hub.pool
    try:
        items, cursor = await list_conversations(
            pool,
            who.account_id,
            agent_id=who.agent_id,
            inboxes=who.inboxes,
            status=q.status,
            inbox_id=q.inbox_id,
            limit=q.limit,
            cursor=q.cursor,
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    inboxes = [
        i
        for i in await account_inbox_ids(pool, who.account_id)
        if who.sees(i) and q.inbox_id in (None, i)
    ]
    counters = await inbox_counters(pool, inboxes)  # the same counters events carry
    return ConversationPage(
        data=msgspec.convert(items, list[Conversation]),
        next_cursor=cursor,
        inboxes=msgspec.convert([counters[i] for i in inboxes], list[InboxCounters]),
    )


@route(
    "GET",
    "/api/v1/conversations/{conversation_id}/messages",
    permission=Permission.CONVERSATIONS_READ,
    summary="A conversation's timeline, oldest first",
    tag="conversations",
    query=PageQuery,
    reply=MessagePage,
)
async def list_messages_route(call: Call) -> MessagePage:
    q: PageQuery = call.query
    who = call.principal
    conversation_id = call.path("conversation_id")
    if not await conversation_exists(call.hub.pool, who, conversation_id):
        raise ApiError(404, "not_found", "no such conversation")
    try:
        items, cursor = await list_messages(
            call.hub.pool, who.account_id, conversation_id, limit=q.limit, cursor=q.cursor
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    return MessagePage(data=msgspec.convert(items, list[Message]), next_cursor=cursor)


_STATUS_FOR = {"not_found": 404}


@route(
    "POST",
    "/api/v1/conversations/{conversation_id}/messages",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Send a reply or add a private note",
    tag="conversations",
    body=NewMessage,
    reply=SentMessage,
    status=201,
    replays=True,
)
async def post_message_route(call: Call) -> Reply:
    """A reply is queued for the channel; a private note is never delivered. ``client_id`` makes
    it safe to retry: the same key returns the stored message with 200 instead of 201."""
    body: NewMessage = call.body
    who = call.principal
    try:
        sent = await in_transaction(
            call.hub.pool,
            create_agent_message,
            account_id=who.account_id,
            agent_id=who.agent_id,
            conversation_id=call.path("conversation_id"),
            content=body.content,
            private=body.private,
            client_id=body.client_id,
            correlation_id=correlation_id.get(),
            inboxes=who.inboxes,
        )
    except MessageRefused as exc:
        raise ApiError(_STATUS_FOR.get(exc.code, 422), exc.code, exc.message) from exc
    reply = SentMessage(sent.id, sent.conversation_id, sent.status, sent.private, sent.duplicate)
    return Reply(reply, status=200 if sent.duplicate else 201)


class PresenceEntry(msgspec.Struct):
    agent_id: str
    status: str


class PresenceList(msgspec.Struct):
    data: list[PresenceEntry]


@route(
    "GET",
    "/api/v1/agents/presence",
    permission=Permission.ACCOUNT_READ,
    summary="Connected agents of the account and their status",
    tag="agents",
    reply=PresenceList,
)
async def presence_route(call: Call) -> PresenceList:
    """What routing reads too."""
    agents = await call.hub.cluster.of_account(call.principal.account_id)
    return PresenceList([PresenceEntry(a, s) for a, s in agents.items()])


ROUTES = [list_conversations_route, list_messages_route, post_message_route, presence_route]
