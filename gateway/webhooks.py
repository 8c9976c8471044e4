"""``/webhooks/{channel}/{inbox_id}``: verify, parse, fetch provider media, ingest, apply status
reports, and answer only after commit.

Provider media is fetched and stored before its message is ingested, so a provider message id is
never recorded as processed without its files: if fetching still fails after a few quick retries,
the answer is 503 with ``Retry-After`` and nothing is kept, so the provider delivers again.
Bad input of any kind is a 4xx JSON error (providers retry 5xx, which would loop forever).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from gateway.responses import ApiError, json_response
from gateway.state import STATE, GatewayState
from hub.actions.echoes import record_echoes, remember_picture, watermark_updates
from hub.actions.edits import apply_edits
from hub.actions.ingest import IngestRequest, IngestResult
from hub.actions.message_status import apply_status_updates
from hub.contracts.channel import (
    ChannelAdapter,
    InboundMessage,
    InboxContext,
    MediaFetchError,
    Sender,
    StatusUpdate,
    WebhookRequest,
    WebhookResult,
    provider_payload,
)
from hub.contracts.registry import get_channel
from hub.logs import correlation_id
from hub.media import media_store
from hub.provider_media import MediaUnavailable, discard, fetch_all
from hub.store.db import in_transaction

log = logging.getLogger(__name__)

PATH = "/webhooks/{channel}/{inbox_id}"
#: seconds a provider is asked to wait before delivering a webhook again (media not fetched)
MEDIA_RETRY_AFTER = "30"


def mount(app: web.Application) -> None:
    """POST for deliveries; GET for verification handshakes (WhatsApp Cloud's ``hub.challenge``)."""
    app.router.add_post(PATH, handle_webhook)
    # a channel with several webhooks per inbox, or a secret in its URL (SendGrid's parse token)
    app.router.add_post(PATH + "/{tail:.+}", handle_webhook)
    app.router.add_get(PATH, handle_webhook, allow_head=False)


def public_url(state: GatewayState, request: web.Request) -> str:
    """The URL the provider called, for signatures that cover it: the configured public base URL
    (a proxy's Host cannot be trusted), else what this gateway received."""
    base = state.hub.config.public_url
    if base:
        return base.rstrip("/") + request.raw_path
    scheme = "https" if state.is_https(request) else "http"
    return f"{scheme}://{request.host}{request.raw_path}"


async def _known(state: GatewayState, inbox: InboxContext, ids: Sequence[str]) -> set[str]:
    rows = await state.hub.pool.fetch(
        """SELECT provider_message_id FROM messages
            WHERE inbox_id = $1 AND provider_message_id = ANY($2::text[])""",
        inbox.id,
        list(ids),
    )
    return {r["provider_message_id"] for r in rows}


async def _with_media(
    state: GatewayState,
    adapter: ChannelAdapter,
    inbox: InboxContext,
    messages: Sequence[InboundMessage],
) -> list[InboundMessage]:
    """Fetch and store the media of messages not stored yet (a retried delivery fetches none)."""
    known = await _known(state, inbox, [m.provider_message_id for m in messages if m.media])
    messages = [
        dataclasses.replace(m, media=()) if m.provider_message_id in known else m for m in messages
    ]
    if not any(m.media for m in messages):
        return messages
    store = media_store(state.hub.config.data_dir)
    try:
        async with aiohttp.ClientSession() as http:
            return await fetch_all(adapter, inbox, messages, http, store)
    except MediaUnavailable as exc:
        raise ApiError(
            503,
            "media_unavailable",
            f"the provider's media could not be fetched, deliver again later: {exc}",
            headers={"Retry-After": MEDIA_RETRY_AFTER},
        ) from exc


async def _discard_unreferenced(state: GatewayState, keys: list[str]) -> None:
    """After a failed ingest, delete the files no committed message holds; if that cannot be
    told (the database is down), keep them: a stray file is harmless, a lost one is not."""
    if not keys:
        return
    try:
        rows = await state.hub.pool.fetch("SELECT key FROM media WHERE key = ANY($1::text[])", keys)
    except Exception:
        return
    held = {r["key"] for r in rows}
    await discard(media_store(state.hub.config.data_dir), [k for k in keys if k not in held])


async def _ingest(
    state: GatewayState, inbox: InboxContext, messages: Sequence[InboundMessage]
) -> list[IngestResult]:
    cid = correlation_id.get()
    submit = state.hub.ingest.submit
    try:
        if len(messages) == 1:
            results = [await submit(IngestRequest(inbox, messages[0], cid))]
        else:
            results = list(
                await asyncio.gather(*(submit(IngestRequest(inbox, m, cid)) for m in messages))
            )
    except Exception:
        await _discard_unreferenced(state, [f.key for m in messages for f in m.files])
        raise
    # a message stored before (or twice in this request) keeps its own files; these are spare
    spare = [f.key for m, r in zip(messages, results, strict=True) if r.duplicate for f in m.files]
    if spare:
        await discard(media_store(state.hub.config.data_dir), spare)
    return results


async def _new_senders(
    state: GatewayState, inbox: InboxContext, senders: Sequence[Sender]
) -> list[Sender]:
    """The senders the account has no contact for yet."""
    rows = await state.hub.pool.fetch(
        """SELECT channel, address FROM contact_identities
            WHERE account_id = $1 AND (channel, address) IN
                  (SELECT * FROM unnest($2::text[], $3::text[]))""",
        inbox.account_id,
        [s.channel for s in senders],
        [s.address for s in senders],
    )
    known = {(r["channel"], r["address"]) for r in rows}
    return [s for s in senders if (s.channel, s.address) not in known]


async def _with_profiles(
    state: GatewayState,
    adapter: ChannelAdapter,
    inbox: InboxContext,
    messages: list[InboundMessage],
) -> tuple[list[InboundMessage], dict[tuple[str, str], str]]:
    """Ask the provider once about each sender the hub does not know yet: the name goes in
    with the first message, the picture (returned by sender) is kept after ingest. A profile
    that cannot be had is no reason to refuse the message: logged and skipped."""
    unnamed = {(m.sender.channel, m.sender.address): m.sender for m in messages}
    new = await _new_senders(state, inbox, list(unnamed.values()))
    if not new:
        return messages, {}
    names: dict[tuple[str, str], str] = {}
    pictures: dict[tuple[str, str], str] = {}
    async with aiohttp.ClientSession() as http:
        for sender in new:
            try:
                profile = await adapter.sender_profile(inbox, sender.address, http)
            except (MediaFetchError, aiohttp.ClientError, TimeoutError) as exc:  # a nicety
                log.warning(
                    "sender profile not fetched",
                    extra={"inbox_id": inbox.id, "reason": f"{type(exc).__name__}: {exc}"},
                )
                continue
            if profile is None:
                continue
            key = (sender.channel, sender.address)
            if profile.name:
                names[key] = profile.name
            if profile.picture_url:
                pictures[key] = profile.picture_url
    named = [
        dataclasses.replace(m, sender=dataclasses.replace(m.sender, name=names[key]))
        if (key := (m.sender.channel, m.sender.address)) in names and not m.sender.name
        else m
        for m in messages
    ]
    return named, pictures


async def _keep_pictures(
    state: GatewayState,
    inbox: InboxContext,
    messages: Sequence[InboundMessage],
    results: Sequence[IngestResult],
    pictures: dict[tuple[str, str], str],
) -> None:
    done: set[str] = set()
    for message, result in zip(messages, results, strict=True):
        url = pictures.get((message.sender.channel, message.sender.address))
        if url is None or result.contact_id in done:
            continue
        done.add(result.contact_id)
        await in_transaction(
            state.hub.pool,
            remember_picture,
            inbox=inbox,
            contact_id=result.contact_id,
            picture_url=url,
            correlation_id=correlation_id.get(),
        )


async def _echoes_and_watermarks(
    state: GatewayState, adapter: ChannelAdapter, inbox: InboxContext, result: WebhookResult
) -> list[StatusUpdate]:
    """Store the business's messages sent from elsewhere; the watermarks as status reports."""
    echoes = list(result.echoes)
    if any(m.media for m in echoes):
        echoes = await _with_media(state, adapter, inbox, echoes)
    if echoes:
        await in_transaction(
            state.hub.pool,
            record_echoes,
            inbox=inbox,
            echoes=echoes,
            correlation_id=correlation_id.get(),
        )
    if not result.watermarks:
        return []
    async with state.hub.pool.acquire() as conn:
        return await watermark_updates(
            conn,
            inbox=inbox,
            channel=adapter.manifest.identity_channel,
            watermarks=result.watermarks,
        )


async def _edits(
    state: GatewayState, inbox: InboxContext, result: WebhookResult
) -> list[IngestResult]:
    """Apply customers' edits; an edit of a message the hub never stored is stored as a
    message of its own (under the edited message's provider id, so its original, if it ever
    comes, is a duplicate)."""
    outcomes = await in_transaction(
        state.hub.pool,
        apply_edits,
        inbox=inbox,
        edits=list(result.edits),
        correlation_id=correlation_id.get(),
    )
    unknown = [
        InboundMessage(
            provider_message_id=o.edit.provider_message_id,
            sender=o.edit.sender,
            content=o.edit.content,
            sent_at=o.edit.edited_at,
        )
        for o in outcomes
        if o.message_id is None
    ]
    if unknown:
        log.info(
            "edits of messages the hub never stored kept as messages",
            extra={"inbox_id": inbox.id, "count": len(unknown)},
        )
    return await _ingest(state, inbox, unknown) if unknown else []


async def handle_webhook(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    channel = request.match_info["channel"]
    inbox_id = request.match_info["inbox_id"]
    adapter = get_channel(channel)
    if adapter is None:
        raise ApiError(404, "unknown_channel", f"no channel called {channel!r}")
    if request.method == "GET" and not adapter.manifest.get_handshake:
        raise ApiError(
            405,
            "method_not_allowed",
            "this channel's webhooks are POSTed",
            headers={"Allow": "POST"},
        )
    inbox = state.inboxes.cached(inbox_id)
    if inbox is None and len(inbox_id) <= 64:
        inbox = await state.inboxes.load(inbox_id)
    if inbox is None or inbox.channel != channel:
        raise ApiError(404, "unknown_inbox", f"no {channel} inbox {inbox_id!r}")
    if not inbox.enabled:
        # 410, not 5xx: providers that retry only 5xx (SendGrid) or nothing (Twilio) stop at once
        raise ApiError(
            410, "inbox_disabled", "this inbox is disabled; an administrator can enable it again"
        )
    body = await request.read()
    webhook = WebhookRequest(
        method=request.method,
        path_qs=request.raw_path,
        content_type=request.content_type,
        headers=request.headers,
        body=body,
        url=public_url(state, request),
    )
    result = await adapter.parse_webhook(webhook, inbox)
    messages = list(result.messages)
    if messages:  # the archive keeps the webhook that carried them (crm/archive)
        raw = provider_payload(request.content_type, body)
        messages = [dataclasses.replace(m, provider_payload=raw) for m in messages]
    pictures: dict[tuple[str, str], str] = {}
    if messages and adapter.manifest.profiles:
        messages, pictures = await _with_profiles(state, adapter, inbox, messages)
    if any(m.media for m in messages):
        messages = await _with_media(state, adapter, inbox, messages)
    results = await _ingest(state, inbox, messages) if messages else []
    if pictures:
        await _keep_pictures(state, inbox, messages, results, pictures)
    if result.edits:  # after the delivery's messages: an edit may follow its original
        results += await _edits(state, inbox, result)
    statuses = list(result.statuses)
    if result.echoes or result.watermarks:
        statuses += await _echoes_and_watermarks(state, adapter, inbox, result)
    outcomes = []
    if statuses:
        outcomes = await in_transaction(
            state.hub.pool,
            apply_status_updates,
            inbox_id=inbox.id,
            channel=inbox.channel,
            updates=statuses,
            correlation_id=correlation_id.get(),
        )
    if result.reply is not None:
        reply = result.reply
        return web.Response(body=reply.body, status=reply.status, content_type=reply.content_type)
    answer: dict[str, object] = {
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
    if statuses:
        answer["statuses"] = [
            {"message_id": o.message_id, "status": o.status, "changed": o.changed} for o in outcomes
        ]
    return json_response(answer)
