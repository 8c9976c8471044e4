"""Provider-held media, fetched and stored before the message that carries it is ingested.

So a provider message id is never recorded as processed without its files (the failure mode of
Chatwoot #15754): a transient failure (timeout, 429, 5xx, a dropped connection) is retried a few
times with backoff inside the webhook request; if it still fails, :class:`MediaUnavailable` makes
the webhook answer 503 with ``Retry-After`` and nothing is stored, so the provider delivers again.
A permanent failure (the file is gone, or too large: over what the provider lets apps download
or over :data:`MAX_MEDIA_BYTES`, the most the media store keeps of a provider file) cannot be
cured by retrying: the message is stored (200 to the provider, never a 5xx) with an attachment
whose ``url`` is empty and whose ``unavailable`` says why (``too_large``, ``not_received``), so
the agent sees that a file was not received and why; the reason is logged.
A media store that cannot take the file (disk full, read-only, a file size limit) is the hub's own
trouble, not the provider's: it takes the same 503 path, logged with the reason, so the message
arrives with its file once the store is writable again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import mimetypes
from collections.abc import AsyncIterator, Sequence

import aiohttp
import tenacity

from hub.contracts.channel import (
    ChannelAdapter,
    FetchedMedia,
    InboundMessage,
    InboxContext,
    MediaFetchError,
    MediaRef,
    StoredFile,
)
from hub.events import Attachment
from hub.events.types import NOT_RECEIVED, TOO_LARGE
from hub.media import MediaStore, MediaTooLarge

log = logging.getLogger(__name__)

#: the largest provider file kept (WhatsApp documents go up to 100 MB; MMS to 5 MB)
MAX_MEDIA_BYTES = 100 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class FetchPolicy:
    attempts: int = 4
    initial: float = 0.25
    maximum: float = 2.0


class MediaUnavailable(Exception):
    """Transient failures outlasted the retries; the provider should deliver the webhook again."""


class MediaStoreFailed(Exception):
    """The media store could not write (an ``OSError`` of the store, not of the download)."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, MediaFetchError):
        return exc.retryable
    return isinstance(exc, aiohttp.ClientError | TimeoutError)


def _filename(ref: MediaRef, content_type: str, n: int) -> str:
    if ref.filename:
        return ref.filename[:255]
    extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
    return f"media-{n}{extension}"


@contextlib.asynccontextmanager
async def _open(
    adapter: ChannelAdapter, inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
) -> AsyncIterator[FetchedMedia]:
    """A file the delivery carried (``ref.data``) as it is; else the adapter fetches it."""
    if ref.data is None:
        async with adapter.fetch_media(inbox, ref, http) as fetched:
            yield fetched
        return

    async def chunks(data: bytes = ref.data) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    yield FetchedMedia(ref.content_type or "", ref.filename, chunks())


async def _fetch_one(
    adapter: ChannelAdapter,
    inbox: InboxContext,
    ref: MediaRef,
    n: int,
    http: aiohttp.ClientSession,
    store: MediaStore,
    policy: FetchPolicy,
) -> StoredFile:
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=tenacity.wait_exponential_jitter(
            multiplier=policy.initial, max=policy.maximum, jitter=policy.initial
        ),
        retry=tenacity.retry_if_exception(_transient),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            async with _open(adapter, inbox, ref, http) as fetched:
                content_type = (
                    fetched.content_type or ref.content_type or "application/octet-stream"
                )
                filename = _filename(ref, content_type, n)
                try:
                    stored = await store.put(
                        inbox.account_id,
                        filename,
                        content_type,
                        fetched.chunks,
                        max_bytes=MAX_MEDIA_BYTES,
                    )
                except OSError as exc:
                    if isinstance(exc, aiohttp.ClientError | TimeoutError):
                        raise  # the download broke off, not the store
                    raise MediaStoreFailed(f"{type(exc).__name__}: {exc}") from exc
            return StoredFile(stored.key, filename, content_type, stored.size, stored.sha256)
    raise AssertionError("unreachable: tenacity reraises the last error")


async def fetch_all(
    adapter: ChannelAdapter,
    inbox: InboxContext,
    messages: Sequence[InboundMessage],
    http: aiohttp.ClientSession,
    store: MediaStore,
    policy: FetchPolicy | None = None,
) -> list[InboundMessage]:
    """``messages`` with their ``media`` fetched into the store (as ``files`` and attachments).

    On :class:`MediaUnavailable` every file this call stored is deleted again.
    """
    policy = policy or FetchPolicy()
    out: list[InboundMessage] = []
    kept: list[str] = []
    try:
        for message in messages:
            if not message.media:
                out.append(message)
                continue
            files: list[StoredFile] = []
            attachments = list(message.attachments)
            for n, ref in enumerate(message.media, start=1):
                try:
                    stored = await _fetch_one(adapter, inbox, ref, n, http, store, policy)
                except (MediaFetchError, MediaTooLarge) as exc:
                    if _transient(exc):
                        raise MediaUnavailable(str(exc)) from exc
                    too_large = isinstance(exc, MediaTooLarge) or exc.too_large
                    log.warning(
                        "provider media could not be fetched for good",
                        extra={
                            "inbox_id": inbox.id,
                            "provider_message_id": message.provider_message_id,
                            "reason": str(exc),
                            "unavailable": TOO_LARGE if too_large else NOT_RECEIVED,
                        },
                    )
                    attachments.append(
                        Attachment(
                            url="",
                            content_type=ref.content_type,
                            filename=ref.filename,
                            unavailable=TOO_LARGE if too_large else NOT_RECEIVED,
                        )
                    )
                    continue
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise MediaUnavailable(repr(exc)) from exc
                except MediaStoreFailed as exc:
                    log.warning(
                        "the media store cannot take a provider file; the provider is asked "
                        "to deliver again",
                        extra={
                            "inbox_id": inbox.id,
                            "provider_message_id": message.provider_message_id,
                            "reason": str(exc),
                        },
                    )
                    raise MediaUnavailable("the media store cannot take the file") from exc
                kept.append(stored.key)
                files.append(stored)
                attachments.append(
                    Attachment(
                        url=stored.url,
                        content_type=stored.content_type,
                        filename=stored.filename,
                        size=stored.size,
                    )
                )
            out.append(
                dataclasses.replace(
                    message, media=(), files=tuple(files), attachments=tuple(attachments)
                )
            )
    except BaseException:
        await discard(store, kept)
        raise
    return out


async def discard(store: MediaStore, keys: Sequence[str]) -> None:
    """Delete stored files no message will hold (a failed request, a duplicate delivery)."""
    if keys:
        await asyncio.gather(*(store.delete(key) for key in keys), return_exceptions=True)
