"""The first read API: conversations and their messages, scoped to the caller's account."""

from __future__ import annotations

from aiohttp import web

from gateway.responses import ApiError, json_response
from gateway.state import STATE
from hub.events import ConversationStatus
from hub.store.reads import BadCursor, conversation_exists, list_conversations, list_messages

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
    try:
        items, cursor = await list_conversations(
            hub.pool,
            principal.account_id,
            status=status,
            inbox_id=request.query.get("inbox_id"),
            limit=_limit(request),
            cursor=request.query.get("cursor"),
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    return json_response({"data": items, "next_cursor": cursor})


async def get_messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    hub = state.hub
    principal = await state.auth.principal(request)
    conversation_id = request.match_info["conversation_id"]
    if not await conversation_exists(hub.pool, principal.account_id, conversation_id):
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
