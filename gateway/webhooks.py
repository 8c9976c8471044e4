"""``POST /webhooks/{channel}/{inbox_id}``: verify, parse, ingest, and answer only after commit."""

from __future__ import annotations

import asyncio

from aiohttp import web

from channels._base import WebhookRequest
from channels.registry import get_channel
from gateway.responses import ApiError, json_response
from gateway.state import STATE
from hub.actions.ingest import IngestRequest
from hub.logs import correlation_id


async def handle_webhook(request: web.Request) -> web.Response:
    state = request.app[STATE]
    channel = request.match_info["channel"]
    inbox_id = request.match_info["inbox_id"]
    adapter = get_channel(channel)
    if adapter is None:
        raise ApiError(404, "unknown_channel", f"no channel called {channel!r}")
    inbox = state.inboxes.cached(inbox_id)
    if inbox is None and len(inbox_id) <= 64:
        inbox = await state.inboxes.load(inbox_id)
    if inbox is None or inbox.channel != channel:
        raise ApiError(404, "unknown_inbox", f"no {channel} inbox {inbox_id!r}")
    body = await request.read()
    webhook = WebhookRequest(
        method=request.method,
        path_qs=request.path_qs,
        content_type=request.content_type,
        headers=request.headers,
        body=body,
    )
    messages = await adapter.parse_webhook(webhook, inbox)
    cid = correlation_id.get()
    submit = state.hub.ingest.submit
    if len(messages) == 1:
        results = [await submit(IngestRequest(inbox, messages[0], cid))]
    else:
        results = await asyncio.gather(*(submit(IngestRequest(inbox, m, cid)) for m in messages))
    return json_response(
        {
            "messages": [
                {
                    "id": r.message_id,
                    "conversation_id": r.conversation_id,
                    "contact_id": r.contact_id,
                    "duplicate": r.duplicate,
                }
                for r in results
            ]
        }
    )
