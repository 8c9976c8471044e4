"""Mail read by the hub itself (IMAP) into the hub: the same steps a webhook takes — files
stored first, then ingest (idempotent on the Message-ID), then delivery reports applied."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp

from channels._base import InboxContext
from channels.email.mime import Parsed
from hub.actions.ingest import IngestRequest, IngestResult
from hub.actions.message_status import apply_status_updates
from hub.contracts.registry import get_channel
from hub.media import media_store
from hub.provider_media import discard, fetch_all
from hub.store.db import in_transaction

if TYPE_CHECKING:
    from hub.app import Hub


async def _known(hub: Hub, inbox: InboxContext, ids: Sequence[str]) -> set[str]:
    rows = await hub.pool.fetch(
        """SELECT provider_message_id FROM messages
            WHERE inbox_id = $1 AND provider_message_id = ANY($2::text[])""",
        inbox.id,
        list(ids),
    )
    return {r["provider_message_id"] for r in rows}


async def take(hub: Hub, inbox: InboxContext, parsed: Parsed) -> list[IngestResult]:
    """Store, ingest and apply one parsed mail; raises what the hub could not do (the caller
    retries the same mail later: nothing is recorded as handled)."""
    store = media_store(hub.config.data_dir)
    adapter = get_channel(inbox.channel)
    assert adapter is not None
    known = await _known(hub, inbox, [m.provider_message_id for m in parsed.messages])
    messages = [
        dataclasses.replace(m, media=()) if m.provider_message_id in known else m
        for m in parsed.messages
    ]
    results: list[IngestResult] = []
    if messages:
        async with aiohttp.ClientSession() as http:  # unused: the files came with the mail
            messages = await fetch_all(adapter, inbox, messages, http, store)
        try:
            for message in messages:
                results.append(await hub.ingest.submit(IngestRequest(inbox, message)))
        except BaseException:
            stored = await _held(hub, [f.key for m in messages for f in m.files])
            await discard(store, [f.key for m in messages for f in m.files if f.key not in stored])
            raise
        spare = [
            f.key for m, r in zip(messages, results, strict=True) if r.duplicate for f in m.files
        ]
        await discard(store, spare)
    if parsed.statuses:
        await in_transaction(
            hub.pool,
            apply_status_updates,
            inbox_id=inbox.id,
            channel=inbox.channel,
            updates=parsed.statuses,
        )
    return results


async def _held(hub: Hub, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    try:
        rows = await hub.pool.fetch("SELECT key FROM media WHERE key = ANY($1::text[])", keys)
    except Exception:
        return set(keys)  # cannot tell: keep them all (a stray file is harmless)
    return {r["key"] for r in rows}
