"""The Graph API calls of the WhatsApp Cloud API, each with the inbox's bearer token: sending a
message, uploading an agent's file for it, and fetching a customer's file in Meta's two steps
(the media id gives a short-lived URL, the URL gives the bytes).

Graph errors are ``{"error": {"message", "type", "code", "error_data": {"details"}, ...}}``; the
``code`` is what decides (HTTP statuses are coarse: a throughput error is a 400), so a refusal
becomes a :class:`SendError` with Meta's code and ``details``. Throughput and rate-limit codes,
Meta's outages, 429 and 5xx are retryable; after a throughput error (130429) every send from the
number waits, doubling with each further one, so the number backs off as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
import orjson

from channels._base import (
    FetchedMedia,
    InboxContext,
    MediaFetchError,
    MediaRef,
    OutboundMessage,
    SendError,
    SendResult,
)
from channels._base.redirects import get_checked
from channels.whatsapp_cloud.inbound import MEDIA_ID
from channels.whatsapp_cloud.manifest import (
    API_BASE_URL,
    API_VERSION,
    PAIR_RATE_CODE,
    PAIR_RATE_WAIT,
    RETRYABLE_CODES,
    THROUGHPUT_CODE,
    WINDOW_CLOSED,
)
from hub.media import MediaNotFound, MediaStore

CHUNK = 64 * 1024
SEND_TIMEOUT = aiohttp.ClientTimeout(total=20, sock_connect=10)
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10)
LOOKUP_TIMEOUT = aiohttp.ClientTimeout(total=20, sock_connect=10)
MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
USER_AGENT = "hub-whatsapp-cloud/0.1"
VERSION = re.compile(r"v[0-9]{1,3}\.[0-9]{1,3}")
PHONE_NUMBER_ID = re.compile(r"[0-9]{1,32}")
HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
#: WhatsApp's limits on what one message holds
MAX_TEXT = 4096
MAX_CAPTION = 1024
#: hosts a customer's file may be downloaded from with the account's token
MEDIA_HOSTS = ("fbsbx.com", "facebook.com", "whatsapp.net", "fbcdn.net")
#: the media kinds WhatsApp plays inline; anything else goes as a document
IMAGE_TYPES = {"image/jpeg", "image/png"}
VIDEO_TYPES = {"video/mp4", "video/3gpp"}
AUDIO_TYPES = {"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}


def api_root(settings: Mapping[str, Any]) -> str:
    value = settings.get("api_base_url")
    return value.rstrip("/") if isinstance(value, str) and value else API_BASE_URL


def api_version(settings: Mapping[str, Any]) -> str:
    value = settings.get("api_version")
    return value if isinstance(value, str) and VERSION.fullmatch(value) else API_VERSION


def api_url(settings: Mapping[str, Any], *path: str) -> str:
    return "/".join((api_root(settings), api_version(settings), *path))


def phone_number_id(settings: Mapping[str, Any]) -> str | None:
    value = settings.get("phone_number_id")
    return value if isinstance(value, str) and PHONE_NUMBER_ID.fullmatch(value) else None


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}


# -- Graph error objects -------------------------------------------------------------------------


class _ErrorData(msgspec.Struct):
    details: str | None = None


class _GraphError(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    code: int | str | None = None
    error_data: _ErrorData | None = None


class _ErrorBody(msgspec.Struct):
    error: _GraphError | None = None


def _clean(text: str | None) -> str:
    return (text or "").replace("\x00", "")[:1024]


def graph_error(status: int, body: bytes) -> tuple[str, str, bool]:
    """(Meta's code or ``http_<status>``, a readable message, retryable) of an error answer."""
    try:
        error = msgspec.json.decode(body, type=_ErrorBody).error or _GraphError()
    except (msgspec.DecodeError, msgspec.ValidationError):
        error = _GraphError()
    code = _clean(str(error.code)) if error.code is not None else f"http_{status}"
    details = error.error_data.details if error.error_data is not None else None
    message = _clean(details or error.message) or f"the Graph API answered {status}"
    retryable = status == 429 or status >= 500 or code in RETRYABLE_CODES
    return code, message, retryable


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(0.0, float(headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


# -- a number's backoff after throughput errors --------------------------------------------------


class Backoff:
    """Per sending number: after a throughput error nothing is sent from it for a while, twice as
    long after each further one in a row (``BASE`` up to ``CAP`` seconds); a success resets it."""

    BASE = 1.0
    CAP = 30.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._strikes: dict[str, int] = {}

    def strike(self, key: str) -> float:
        strikes = self._strikes[key] = self._strikes.get(key, 0) + 1
        wait = min(self.CAP, self.BASE * 2.0 ** (strikes - 1))
        self._until[key] = self._clock() + wait
        return wait

    def clear(self, key: str) -> None:
        self._strikes.pop(key, None)
        self._until.pop(key, None)

    def remaining(self, key: str) -> float:
        return max(0.0, self._until.get(key, 0.0) - self._clock())


# -- sending -------------------------------------------------------------------------------------


class _SentId(msgspec.Struct):
    id: str


class _Sent(msgspec.Struct):
    messages: list[_SentId] = []


class _Uploaded(msgspec.Struct):
    id: str


class _SizedStream(aiohttp.AsyncIterablePayload):
    """A stored file of known size, so the upload carries a Content-Length, not chunks."""

    def __init__(self, chunks: AsyncIterable[bytes], size: int, content_type: str) -> None:
        super().__init__(chunks, content_type=content_type)
        self._known = size

    @property
    def size(self) -> int:
        return self._known


@dataclasses.dataclass(frozen=True)
class _File:
    """An agent's file as WhatsApp takes it: its kind, and a stored key or a public link."""

    kind: str
    content_type: str
    filename: str
    key: str | None
    link: str | None
    size: int | None


def _kind(content_type: str, captioned: bool) -> str:
    if content_type in IMAGE_TYPES:
        return "image"
    if content_type in VIDEO_TYPES:
        return "video"
    if content_type in AUDIO_TYPES and not captioned:  # audio carries no caption
        return "audio"
    return "document"


def _file(attachment: Mapping[str, Any], captioned: bool) -> _File:
    content_type = str(attachment.get("content_type") or "application/octet-stream")
    content_type = content_type.split(";")[0].strip().lower()
    url = str(attachment.get("url") or "")
    key = attachment.get("key") or (
        url.removeprefix("/api/v1/media/") if url.startswith("/api/v1/media/") else None
    )
    link = url if url.startswith("https://") else None
    if not key and not link:
        raise SendError("media_unavailable", "the attachment has no stored file", retryable=False)
    size = attachment.get("size")
    return _File(
        kind=_kind(content_type, captioned),
        content_type=content_type,
        filename=str(attachment.get("filename") or "attachment"),
        key=str(key) if key else None,
        link=link,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def message_body(
    message: OutboundMessage, *, media_id: str | None = None, file: _File | None = None
) -> dict[str, Any]:
    """The ``/messages`` request for one hub message (text, a file with its caption, or a
    template with its body parameters)."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to.removeprefix("+"),
    }
    template = message.template
    if template is not None:
        sent: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
        if template.body_parameters:
            sent["components"] = [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": p} for p in template.body_parameters],
                }
            ]
        return {**body, "type": "template", "template": sent}
    if file is not None:
        media: dict[str, Any] = {"id": media_id} if media_id else {"link": file.link}
        if message.content and file.kind != "audio":
            media["caption"] = message.content
        if file.kind == "document":
            media["filename"] = file.filename
        return {**body, "type": file.kind, file.kind: media}
    return {**body, "type": "text", "text": {"preview_url": False, "body": message.content}}


def _window_closed(message: OutboundMessage, window_seconds: float, now: float) -> bool:
    last = message.last_inbound_at
    return last is None or now - last.timestamp() >= window_seconds


class GraphSender:
    def __init__(self, http: aiohttp.ClientSession, media: MediaStore | None) -> None:
        self._http = http
        self._media = media
        self.backoff = Backoff()

    async def send(
        self, inbox: InboxContext, message: OutboundMessage, window_seconds: float
    ) -> SendResult:
        token = str(inbox.secrets.get("access_token") or "")
        number = phone_number_id(inbox.settings)
        if not token or number is None:
            raise SendError(
                "not_configured",
                "the inbox has no access_token or phone_number_id",
                retryable=False,
            )
        if message.template is None and _window_closed(message, window_seconds, time.time()):
            raise SendError(
                WINDOW_CLOSED,
                f"more than {round(window_seconds / 3600)} hours have passed since the "
                "customer's last message: only a template can be sent until they write again",
                retryable=False,
            )
        file = self._one_file(message)
        if file is None and message.template is None:
            if not message.content:
                raise SendError("empty_message", "nothing to send", retryable=False)
            if len(message.content) > MAX_TEXT:
                raise SendError(
                    "text_too_long",
                    f"a WhatsApp message holds at most {MAX_TEXT} characters",
                    retryable=False,
                )
        media_id = None
        if file is not None and file.key is not None:
            media_id = await self._upload(inbox, token, number, file)
        body = message_body(message, media_id=media_id, file=file)
        return await self._post_message(inbox, token, number, body)

    def _one_file(self, message: OutboundMessage) -> _File | None:
        if message.template is not None or not message.attachments:
            return None
        if len(message.attachments) > 1:
            raise SendError(
                "too_many_attachments",
                "a WhatsApp message carries one file; send each file as its own message",
                retryable=False,
            )
        captioned = bool(message.content)
        if captioned and len(message.content or "") > MAX_CAPTION:
            raise SendError(
                "caption_too_long",
                f"a WhatsApp caption holds at most {MAX_CAPTION} characters",
                retryable=False,
            )
        return _file(message.attachments[0], captioned)

    async def _pause(self, key: str) -> None:
        wait = self.backoff.remaining(key)
        if wait > 0:
            await asyncio.sleep(wait)

    def _failure(
        self, number: str, status: int, body: bytes, headers: Mapping[str, str]
    ) -> SendError:
        code, text, retryable = graph_error(status, body)
        retry_after = _retry_after(headers) if retryable else None
        if code == THROUGHPUT_CODE:
            retry_after = self.backoff.strike(number)
        elif code == PAIR_RATE_CODE:
            retry_after = PAIR_RATE_WAIT
        return SendError(code, text, retryable=retryable, retry_after=retry_after)

    async def _post(
        self,
        number: str,
        url: str,
        data: Any,
        headers: Mapping[str, str],
        limit: aiohttp.ClientTimeout,
    ) -> bytes:
        """The body of a 200 answer; any other answer, or no answer, is a :class:`SendError`."""
        try:
            async with self._http.post(
                url, data=data, headers=headers, timeout=limit, allow_redirects=False
            ) as response:
                answer = await response.read()
                if response.status != 200:
                    raise self._failure(number, response.status, answer, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError("network_error", repr(exc), retryable=True) from exc
        return answer

    async def _post_message(
        self, inbox: InboxContext, token: str, number: str, body: dict[str, Any]
    ) -> SendResult:
        await self._pause(number)
        url = api_url(inbox.settings, number, "messages")
        headers = {**_headers(token), "Content-Type": "application/json"}
        answer = await self._post(number, url, orjson.dumps(body), headers, SEND_TIMEOUT)
        self.backoff.clear(number)
        try:
            sent = msgspec.json.decode(answer, type=_Sent)
        except (msgspec.DecodeError, msgspec.ValidationError):
            sent = _Sent()
        if not sent.messages or not sent.messages[0].id:
            # accepted but unreadable: sending again could deliver it twice
            raise SendError("invalid_response", "the Graph API gave no message id", retryable=False)
        return SendResult(_clean(sent.messages[0].id)[:256])

    async def _upload(self, inbox: InboxContext, token: str, number: str, file: _File) -> str:
        """The agent's file, streamed from the media store to ``/{phone_number_id}/media``."""
        if self._media is None or file.key is None:
            raise SendError("media_unavailable", "no media store to read from", retryable=False)
        chunks = self._media.open(file.key)
        try:
            first = await anext(chunks, b"")
        except MediaNotFound as exc:
            raise SendError("media_unavailable", "the file is gone", retryable=False) from exc

        async def stream() -> AsyncIterator[bytes]:
            if first:
                yield first
            async for chunk in chunks:
                yield chunk

        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", file.content_type)
        payload: aiohttp.Payload = (
            _SizedStream(stream(), file.size, file.content_type)
            if file.size is not None
            else aiohttp.AsyncIterablePayload(stream(), content_type=file.content_type)
        )
        form.add_field("file", payload, filename=file.filename, content_type=file.content_type)
        url = api_url(inbox.settings, number, "media")
        try:
            answer = await self._post(number, url, form, _headers(token), UPLOAD_TIMEOUT)
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()
        try:
            uploaded = msgspec.json.decode(answer, type=_Uploaded)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SendError(
                "invalid_response", "the Graph API gave no media id", retryable=True
            ) from exc
        return uploaded.id


# -- a customer's file, in two steps -------------------------------------------------------------


class _MediaInfo(msgspec.Struct):
    url: str
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | str | None = None


def media_host_allowed(url: str, settings: Mapping[str, Any]) -> bool:
    """The token goes only to Meta's file hosts, or to the API base URL an inbox is set to."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        configured = urlsplit(api_root(settings))
        if parts.scheme == configured.scheme and host == (configured.hostname or "").lower():
            return parts.port == configured.port
    except ValueError:  # a port that is not a number
        return False
    return parts.scheme == "https" and any(
        host == allowed or host.endswith("." + allowed) for allowed in MEDIA_HOSTS
    )


async def _checked(chunks: AsyncIterable[bytes], expected: str | None) -> AsyncIterator[bytes]:
    """The bytes as they come, and a refusal at the end if they are not the file WhatsApp
    described (a wrong file is worse than a missing one: the gap shows, the wrong file lies)."""
    digest = hashlib.sha256()
    async for chunk in chunks:
        digest.update(chunk)
        yield chunk
    wanted = (expected or "").lower()
    if HEX_SHA256.fullmatch(wanted) and digest.hexdigest() != wanted:
        raise MediaFetchError("the file's SHA-256 is not the one WhatsApp gave", retryable=False)


def _lookup_failure(status: int, body: bytes) -> MediaFetchError:
    code, text, retryable = graph_error(status, body)
    return MediaFetchError(f"media lookup failed ({code}): {text}", retryable=retryable)


@contextlib.asynccontextmanager
async def open_media(
    inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
) -> AsyncIterator[FetchedMedia]:
    token = str(inbox.secrets.get("access_token") or "")
    if not token:
        raise MediaFetchError("the inbox has no access_token", retryable=False)
    if not MEDIA_ID.fullmatch(ref.ref):
        raise MediaFetchError("not a WhatsApp media id", retryable=False)
    params = {}
    number = phone_number_id(inbox.settings)
    if number is not None:
        params["phone_number_id"] = number
    headers = _headers(token)
    async with http.get(
        api_url(inbox.settings, ref.ref),
        params=params,
        headers=headers,
        timeout=LOOKUP_TIMEOUT,
        allow_redirects=False,  # the token never follows a redirect
    ) as response:
        answer = await response.read()
        if response.status != 200:
            raise _lookup_failure(response.status, answer)
    try:
        info = msgspec.json.decode(answer, type=_MediaInfo)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MediaFetchError("the media lookup gave no URL", retryable=True) from exc
    if not media_host_allowed(info.url, inbox.settings):
        raise MediaFetchError("the media URL is not Meta's", retryable=False)
    base = inbox.settings.get("api_base_url")
    async with get_checked(
        http,
        info.url,
        headers=headers,
        limit=MEDIA_TIMEOUT,
        allowed=lambda url: media_host_allowed(url, inbox.settings),
        trusted_origin=base if isinstance(base, str) and base else None,
    ) as download:
        if download.status != 200:
            # the URL lives five minutes and each attempt looks it up again
            retryable = download.status in (401, 403, 404, 408, 429) or download.status >= 500
            raise MediaFetchError(
                f"the media download answered {download.status}", retryable=retryable
            )
        yield FetchedMedia(
            content_type=info.mime_type or ref.content_type or download.content_type or "",
            filename=ref.filename,
            chunks=_checked(download.content.iter_chunked(CHUNK), info.sha256),
        )
