"""The first read API: conversations and their messages, scoped to the caller's account."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.responses import ApiError, json_response
from gateway.state import STATE
from hub.actions.messages import MessageRefused, create_agent_message
from hub.events import ConversationStatus
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

_STATUSES = {s.value for s in ConversationStatus}


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise ApiError(400, "invalid_parameter", "limit must be a whole number from 1 to 200")
    return int(raw)


async def get_conversations(request: web.Request) -> web.Response:
    state = request.app[STATE]
    hub = state.hub
    principal = await state.auth.principal(request)
    status = request.query.get("status")
    if status is not None and status not in _STATUSES:
        raise ApiError(
            400, "invalid_parameter", f"status must be one of {', '.join(sorted(_STATUSES))}"
        )
    inbox_id = request.query.get("inbox_id")
    try:
        items, cursor = await list_conversations(
            hub.pool,
            principal.account_id,
            agent_id=principal.agent_id,
            inboxes=principal.inboxes,
            status=status,
            inbox_id=inbox_id,
            limit=_limit(request),
            cursor=request.query.get("cursor"),
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    inboxes = [
        i
        for i in await account_inbox_ids(hub.pool, principal.account_id)
        if principal.sees(i) and inbox_id in (None, i)
    ]
    # the same counters every conversation event carries in its context (docs/realtime.md)
    counters = await inbox_counters(hub.pool, inboxes)
    return json_response(
        {"data": items, "next_cursor": cursor, "inboxes": [counters[i] for i in inboxes]}
    )


async def get_messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    hub = state.hub
    principal = await state.auth.principal(request)
    conversation_id = request.match_info["conversation_id"]
    if not await conversation_exists(hub.pool, principal, conversation_id):
        raise ApiError(404, "not_found", "no such conversation")
    try:
        items, cursor = await list_messages(
            hub.pool,
            principal.account_id,
            conversation_id,
            limit=_limit(request),
            cursor=request.query.get("cursor"),
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    return json_response({"data": items, "next_cursor": cursor})


class NewMessage(msgspec.Struct, forbid_unknown_fields=True):
    content: str
    private: bool = False
    client_id: str | None = None


_new_message = msgspec.json.Decoder(NewMessage)
_STATUS_FOR = {"not_found": 404}


async def post_message(request: web.Request) -> web.Response:
    """Send a reply (queued for the channel) or add a private note; ``client_id`` makes it safe
    to retry: the same key returns the stored message with 200 instead of 201."""
    state = request.app[STATE]
    principal = await state.auth.principal(request)
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        body = _new_message.decode(await request.read())
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_body", str(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "body is not valid UTF-8 JSON") from exc
    if body.client_id is not None and not 0 < len(body.client_id) <= 128:
        raise ApiError(422, "invalid_body", "client_id must have 1 to 128 characters")
    try:
        sent = await in_transaction(
            state.hub.pool,
            create_agent_message,
            account_id=principal.account_id,
            agent_id=principal.agent_id,
            conversation_id=request.match_info["conversation_id"],
            content=body.content,
            private=body.private,
            client_id=body.client_id,
            correlation_id=correlation_id.get(),
            inboxes=principal.inboxes,
        )
    except MessageRefused as exc:
        raise ApiError(_STATUS_FOR.get(exc.code, 422), exc.code, exc.message) from exc
    return json_response(
        {
            "id": sent.id,
            "conversation_id": sent.conversation_id,
            "status": sent.status,
            "private": sent.private,
            "duplicate": sent.duplicate,
        },
        status=200 if sent.duplicate else 201,
    )


async def get_presence(request: web.Request) -> web.Response:
    """Connected agents of the caller's account and their status (what routing reads too)."""
    state = request.app[STATE]
    principal = await state.auth.principal(request)
    agents = await state.hub.cluster.of_account(principal.account_id)
    return json_response({"data": [{"agent_id": a, "status": s} for a, s in agents.items()]})
