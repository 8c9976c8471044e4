"""The Telegram Bot API calls the hub makes: sending (text, photos, documents, with reply-to
threading), registering the webhook, and fetching a customer's file (``getFile``, then the file).

Every answer is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code",
"description", "parameters": {"retry_after"}}``. A 429 carries ``retry_after`` seconds, which the
dispatcher waits before the next attempt; 5xx and network failures are retried too; anything else
(a blocked bot is 403, a bad chat 400) is final. The bot token is part of every URL, so URLs are
never logged or put in an error.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

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
from channels.telegram.inbound import FileId, provider_id
from channels.telegram.manifest import API_BASE_URL, MAX_CAPTION, MAX_DOWNLOAD_BYTES, MAX_TEXT
from hub.media import MediaNotFound, MediaStore

CHUNK = 64 * 1024
CALL_TIMEOUT = aiohttp.ClientTimeout(total=20, sock_connect=10)
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10)
MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
#: Telegram shows these inline as a photo (up to 10 MB); anything else goes as a document
PHOTO_TYPES = {"image/jpeg", "image/png", "image/webp"}
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,200}")


def api_root(settings: Mapping[str, Any]) -> str:
    value = settings.get("api_base_url")
    return value.rstrip("/") if isinstance(value, str) and value else API_BASE_URL


def method_url(inbox: InboxContext, method: str) -> str:
    return f"{api_root(inbox.settings)}/bot{_token(inbox)}/{method}"


def _token(inbox: InboxContext) -> str:
    """The bot token, which goes into every URL: only in the form @BotFather gives it."""
    token = str(inbox.secrets.get("bot_token") or "")
    if not TOKEN.fullmatch(token):
        raise SendError("not_configured", "the inbox has no usable bot_token", retryable=False)
    return token


class _Parameters(msgspec.Struct):
    retry_after: float | None = None


class _Answer(msgspec.Struct):
    ok: bool
    # a factory: a default value of type Raw cannot be written into the OpenAPI/JSON schema
    result: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    error_code: int | None = None
    description: str | None = None
    parameters: _Parameters | None = None


class _Sent(msgspec.Struct):
    message_id: int
    chat: dict[str, Any]


class _FileInfo(msgspec.Struct):
    file_id: str
    file_path: str | None = None
    file_size: int | None = None


async def call(
    http: aiohttp.ClientSession,
    inbox: InboxContext,
    method: str,
    *,
    json: Mapping[str, Any] | None = None,
    data: aiohttp.FormData | None = None,
    limit: aiohttp.ClientTimeout = CALL_TIMEOUT,
) -> msgspec.Raw:
    """The ``result`` of a Bot API method; :class:`SendError` with Telegram's code otherwise."""
    try:
        async with http.post(
            method_url(inbox, method),
            json=json,
            data=data,
            timeout=limit,
            allow_redirects=False,
        ) as response:
            body = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SendError("network_error", type(exc).__name__, retryable=True) from exc
    try:
        answer = msgspec.json.decode(body, type=_Answer)
    except (msgspec.DecodeError, msgspec.ValidationError):
        answer = _Answer(ok=False)
    if status == 200 and answer.ok and bytes(answer.result) != b"null":
        return answer.result
    code = str(answer.error_code or status)
    text = (answer.description or f"the Bot API answered {status}").replace("\x00", "")[:1024]
    retry_after = answer.parameters.retry_after if answer.parameters is not None else None
    retryable = status == 429 or status >= 500 or retry_after is not None
    raise SendError(code, text, retryable=retryable, retry_after=retry_after)


# -- sending -------------------------------------------------------------------------------------


def _reply_to(message: OutboundMessage, chat_id: str, settings: Mapping[str, Any]) -> int | None:
    """The customer's latest message in this chat, when the inbox quotes replies."""
    if settings.get("quote_replies") not in (True, "true", "1", "yes"):
        return None
    for ref in reversed(message.thread_refs):
        chat, _, rest = ref.partition(":")
        if chat == chat_id and rest.isdigit():
            return int(rest)
    return None


class BotSender:
    def __init__(self, http: aiohttp.ClientSession, media: MediaStore | None) -> None:
        self._http = http
        self._media = media

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        chat_id = message.to
        if not chat_id.lstrip("-").isdigit():
            raise SendError("invalid_recipient", "not a Telegram chat id", retryable=False)
        if len(message.attachments) > 1:
            raise SendError("too_many_attachments", "send one file per message", retryable=False)
        text = message.content or ""
        threading: dict[str, Any] = {}
        reply_to = _reply_to(message, chat_id, inbox.settings)
        if reply_to is not None:
            threading["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        if message.quick_replies:  # a keyboard of the choices, gone once one is tapped
            threading["reply_markup"] = {
                "keyboard": [[{"text": q}] for q in message.quick_replies],
                "one_time_keyboard": True,
                "resize_keyboard": True,
            }
        if not message.attachments:
            if not text:
                raise SendError("empty_message", "nothing to send", retryable=False)
            if len(text) > MAX_TEXT:
                raise SendError(
                    "text_too_long",
                    f"a Telegram message holds at most {MAX_TEXT} characters",
                    retryable=False,
                )
            result = await call(
                self._http,
                inbox,
                "sendMessage",
                json={"chat_id": chat_id, "text": text, **threading},
            )
            return self._result(result)
        if len(text) > MAX_CAPTION:
            raise SendError(
                "caption_too_long",
                f"a Telegram caption holds at most {MAX_CAPTION} characters",
                retryable=False,
            )
        return await self._send_file(inbox, chat_id, message.attachments[0], text, threading)

    def _result(self, raw: msgspec.Raw) -> SendResult:
        try:
            sent = msgspec.json.decode(raw, type=_Sent)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SendError(
                "invalid_response", "the Bot API gave no message id", retryable=False
            ) from exc
        return SendResult(provider_id(int(sent.chat.get("id", 0)), sent.message_id))

    async def _send_file(
        self,
        inbox: InboxContext,
        chat_id: str,
        attachment: Mapping[str, Any],
        caption: str,
        threading: Mapping[str, Any],
    ) -> SendResult:
        content_type = str(attachment.get("content_type") or "application/octet-stream")
        content_type = content_type.split(";")[0].strip().lower()
        url = str(attachment.get("url") or "")
        key = attachment.get("key") or (
            url.removeprefix("/api/v1/media/") if url.startswith("/api/v1/media/") else None
        )
        if not key or self._media is None:
            raise SendError(
                "media_unavailable", "the attachment has no stored file", retryable=False
            )
        data = bytearray()
        try:
            async for chunk in self._media.open(str(key)):
                data += chunk
                if len(data) > MAX_UPLOAD_BYTES:
                    raise SendError(
                        "attachment_too_large", "bots send files up to 50 MB", retryable=False
                    )
        except MediaNotFound as exc:
            raise SendError("media_unavailable", "the file is gone", retryable=False) from exc
        photo = content_type in PHOTO_TYPES and len(data) <= MAX_PHOTO_BYTES
        field, method = ("photo", "sendPhoto") if photo else ("document", "sendDocument")
        form = aiohttp.FormData()
        form.add_field("chat_id", chat_id)
        if caption:
            form.add_field("caption", caption)
        for name in ("reply_parameters", "reply_markup"):
            if name in threading:
                form.add_field(name, msgspec.json.encode(threading[name]).decode())
        filename = str(attachment.get("filename") or "attachment")
        form.add_field(field, bytes(data), filename=filename, content_type=content_type)
        result = await call(self._http, inbox, method, data=form, limit=UPLOAD_TIMEOUT)
        return self._result(result)


async def set_webhook(http: aiohttp.ClientSession, inbox: InboxContext, url: str) -> None:
    """Point the bot's updates at ``url``, with the inbox's secret token."""
    secret = str(inbox.secrets.get("webhook_secret") or "")
    await call(
        http,
        inbox,
        "setWebhook",
        json={
            "url": url,
            "secret_token": secret,
            "allowed_updates": ["message", "edited_message"],
        },
    )


# -- a customer's file ---------------------------------------------------------------------------


def _same_origin(url: str, settings: Mapping[str, Any]) -> bool:
    try:
        a, b = urlsplit(url), urlsplit(api_root(settings))
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    except ValueError:
        return False


@contextlib.asynccontextmanager
async def open_media(
    inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
) -> AsyncIterator[FetchedMedia]:
    if not _file_id_ok(ref.ref):
        raise MediaFetchError("not a Telegram file id", retryable=False)
    try:
        raw = await call(http, inbox, "getFile", json={"file_id": ref.ref})
        info = msgspec.json.decode(raw, type=_FileInfo)
    except SendError as exc:
        raise MediaFetchError(
            f"getFile failed ({exc.code}): {exc.message}", retryable=exc.retryable
        ) from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MediaFetchError("getFile gave no file", retryable=True) from exc
    if (info.file_size or 0) > MAX_DOWNLOAD_BYTES or not info.file_path:
        # the Bot API gives no path for files over 20 MB: the agent sees it was not received
        raise MediaFetchError(
            "the file is larger than bots may download", retryable=False, too_large=True
        )
    base = api_root(inbox.settings)
    url = f"{base}/file/bot{_token(inbox)}/{info.file_path.lstrip('/')}"
    async with get_checked(
        http,
        url,
        headers={},
        limit=MEDIA_TIMEOUT,
        allowed=lambda hop: _same_origin(hop, inbox.settings),
        trusted_origin=base,
    ) as download:
        if download.status != 200:
            retryable = download.status in (408, 429) or download.status >= 500
            raise MediaFetchError(
                f"the file download answered {download.status}", retryable=retryable
            )
        said = download.content_type
        content_type = said if said and said != "application/octet-stream" else ref.content_type
        yield FetchedMedia(
            content_type=content_type or "application/octet-stream",
            filename=ref.filename or info.file_path.rsplit("/", 1)[-1][:255],
            chunks=_limited(download.content.iter_chunked(CHUNK)),
        )


def _file_id_ok(value: str) -> bool:
    try:
        msgspec.convert(value, FileId)
    except msgspec.ValidationError:
        return False
    return True


async def _limited(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > MAX_DOWNLOAD_BYTES:
            raise MediaFetchError(
                "the file is larger than bots may download", retryable=False, too_large=True
            )
        yield chunk
