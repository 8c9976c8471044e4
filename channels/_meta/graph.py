"""The Graph API calls of the Messenger Platform (Messenger and Instagram Direct alike): the Send
API, the files customers send (CDN URLs in the webhook, fetched without the token), and a new
sender's profile.

Replies go out as ``RESPONSE`` within 24 hours of the person's last message; from 24 hours to 7
days only with the ``HUMAN_AGENT`` tag (the inbox's ``human_agent`` setting, once Meta has granted
the app that permission); after that nothing can be sent until they write again. The refusal says
so to the agent (``window_closed``), and no request is made.

Graph errors are ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``; rate
limits (4, 17, 32, 613), Meta's temporary errors (1, 2, 1200), 429 and 5xx are retried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
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
    Profile,
    SendError,
    SendResult,
)
from channels._base.redirects import get_checked
from channels._meta.flavour import (
    API_BASE_URL,
    API_VERSION,
    HUMAN_AGENT_WINDOW,
    MAX_ATTACHMENT_BYTES,
    MAX_TEXT,
    METADATA_PREFIX,
    NUMERIC_ID,
    STANDARD_WINDOW,
    VERSION,
    Flavour,
)
from hub.media import MediaNotFound, MediaStore

CHUNK = 64 * 1024
SEND_TIMEOUT = aiohttp.ClientTimeout(total=20, sock_connect=10)
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10)
LOOKUP_TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=5)
MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
USER_AGENT = "hub-meta/0.1"
RETRYABLE_CODES = frozenset({"1", "2", "4", "17", "32", "613", "1200"})
#: code 10, subcode 2018278: "sent outside of allowed window"
OUTSIDE_WINDOW = ("10", "2018278")
WINDOW_CLOSED = "window_closed"
ATTACHMENT_TYPES = (("image/", "image"), ("video/", "video"), ("audio/", "audio"))


def api_root(settings: Mapping[str, Any]) -> str:
    value = settings.get("api_base_url")
    return value.rstrip("/") if isinstance(value, str) and value else API_BASE_URL


def api_url(settings: Mapping[str, Any], *path: str) -> str:
    value = settings.get("api_version")
    version = value if isinstance(value, str) and VERSION.fullmatch(value) else API_VERSION
    return "/".join((api_root(settings), version, *path))


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}


class _GraphError(msgspec.Struct):
    message: str | None = None
    code: int | str | None = None
    error_subcode: int | str | None = None


class _ErrorBody(msgspec.Struct):
    error: _GraphError | None = None


def graph_error(status: int, body: bytes) -> tuple[str, str, bool]:
    """(Meta's code or ``http_<status>``, its message, retryable) of an error answer."""
    try:
        error = msgspec.json.decode(body, type=_ErrorBody).error or _GraphError()
    except (msgspec.DecodeError, msgspec.ValidationError):
        error = _GraphError()
    code = str(error.code)[:64] if error.code is not None else f"http_{status}"
    message = (error.message or f"the Graph API answered {status}").replace("\x00", "")[:1024]
    if (code, str(error.error_subcode)) == OUTSIDE_WINDOW:
        return WINDOW_CLOSED, message, False
    return code, message, status == 429 or status >= 500 or code in RETRYABLE_CODES


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(0.0, float(headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def messaging_type(
    message: OutboundMessage, settings: Mapping[str, Any], label: str, now: float
) -> dict[str, str]:
    """``messaging_type`` (and ``tag``) for a reply now, or ``window_closed``."""
    last = message.last_inbound_at
    age = None if last is None else now - last.timestamp()
    if age is not None and age < STANDARD_WINDOW.total_seconds():
        return {"messaging_type": "RESPONSE"}
    if age is not None and age < HUMAN_AGENT_WINDOW.total_seconds():
        if settings.get("human_agent") in (True, "true", "1", "yes"):
            return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
        raise SendError(
            WINDOW_CLOSED,
            f"more than 24 hours have passed since the customer's last {label} message; "
            "replies up to 7 days need the HUMAN_AGENT tag, which is off for this inbox "
            "(turn on human_agent once Meta has approved the app for it)",
            retryable=False,
        )
    raise SendError(
        WINDOW_CLOSED,
        f"more than 7 days have passed since the customer's last {label} message: "
        "nothing can be sent until they write again",
        retryable=False,
    )


@dataclasses.dataclass(frozen=True)
class _File:
    kind: str
    content_type: str
    filename: str
    key: str


def _file(attachment: Mapping[str, Any]) -> _File:
    content_type = str(attachment.get("content_type") or "application/octet-stream")
    content_type = content_type.split(";")[0].strip().lower()
    url = str(attachment.get("url") or "")
    key = attachment.get("key") or (
        url.removeprefix("/api/v1/media/") if url.startswith("/api/v1/media/") else None
    )
    if not key:
        raise SendError("media_unavailable", "the attachment has no stored file", retryable=False)
    size = attachment.get("size")
    if isinstance(size, int) and size > MAX_ATTACHMENT_BYTES:
        raise SendError(
            "attachment_too_large",
            f"the platform takes files up to {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB",
            retryable=False,
        )
    kind = next((k for prefix, k in ATTACHMENT_TYPES if content_type.startswith(prefix)), "file")
    return _File(kind, content_type, str(attachment.get("filename") or "attachment"), str(key))


class _Sent(msgspec.Struct):
    message_id: str | None = None
    recipient_id: str | None = None


class SendApi:
    def __init__(
        self, flavour: Flavour, http: aiohttp.ClientSession, media: MediaStore | None
    ) -> None:
        self._flavour = flavour
        self._http = http
        self._media = media

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        token = str(inbox.secrets.get(self._flavour.token_secret) or "")
        account = self._flavour.account_id(inbox.settings)
        if not token or account is None:
            raise SendError(
                "not_configured",
                f"the inbox has no {self._flavour.token_secret} or {self._flavour.account_setting}",
                retryable=False,
            )
        if len(message.attachments) > 1:
            raise SendError("too_many_attachments", "send one file per message", retryable=False)
        text = message.content or ""
        if not text and not message.attachments:
            raise SendError("empty_message", "nothing to send", retryable=False)
        if len(text) > MAX_TEXT:
            raise SendError(
                "text_too_long",
                f"a {self._flavour.label} message holds at most {MAX_TEXT} characters",
                retryable=False,
            )
        kind = messaging_type(message, inbox.settings, self._flavour.label, time.time())
        recipient = {"id": message.to}
        metadata = (
            {"metadata": METADATA_PREFIX + message.message_id}
            if self._flavour.echo_metadata
            else {}
        )
        url = api_url(inbox.settings, account, "messages")
        choices: dict[str, Any] = {}
        if message.quick_replies:
            choices["quick_replies"] = [
                {"content_type": "text", "title": q, "payload": q} for q in message.quick_replies
            ]
        if not message.attachments:
            said = {"text": text, **choices, **metadata}
            return await self._post_json(
                url, token, {**kind, "recipient": recipient, "message": said}
            )
        file = _file(message.attachments[0])
        sent = await self._upload(url, token, kind, recipient, file, metadata)
        if not text:
            return sent
        # the platform has no captions: the text follows the file as its own message
        try:
            body = {
                **kind,
                "recipient": recipient,
                "message": {"text": text, **choices, **metadata},
            }
            await self._post_json(url, token, body)
        except SendError as exc:
            raise SendError(
                "text_not_sent",
                f"the file was sent but its text was not ({exc.code}: {exc.message})",
                retryable=False,
            ) from exc
        return sent

    async def _post(
        self, url: str, data: Any, headers: Mapping[str, str], limit: aiohttp.ClientTimeout
    ) -> SendResult:
        try:
            async with self._http.post(
                url, data=data, headers=headers, timeout=limit, allow_redirects=False
            ) as response:
                answer = await response.read()
                if response.status != 200:
                    code, text, retryable = graph_error(response.status, answer)
                    retry_after = _retry_after(response.headers) if retryable else None
                    raise SendError(code, text, retryable=retryable, retry_after=retry_after)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError("network_error", repr(exc), retryable=True) from exc
        try:
            sent = msgspec.json.decode(answer, type=_Sent)
        except (msgspec.DecodeError, msgspec.ValidationError):
            sent = _Sent()
        if not sent.message_id:
            # accepted but unreadable: sending again could deliver it twice
            raise SendError("invalid_response", "the Send API gave no message id", retryable=False)
        return SendResult(sent.message_id.replace("\x00", "")[:256])

    async def _post_json(self, url: str, token: str, body: dict[str, Any]) -> SendResult:
        headers = {**_headers(token), "Content-Type": "application/json"}
        return await self._post(url, orjson.dumps(body), headers, SEND_TIMEOUT)

    async def _upload(
        self,
        url: str,
        token: str,
        kind: Mapping[str, str],
        recipient: Mapping[str, str],
        file: _File,
        metadata: Mapping[str, str],
    ) -> SendResult:
        """The file as ``filedata`` in a multipart Send API request (the hub has no public URL
        for the platform to fetch it from)."""
        if self._media is None:
            raise SendError("media_unavailable", "no media store to read from", retryable=False)
        data = bytearray()
        try:
            async for chunk in self._media.open(file.key):
                data += chunk
                if len(data) > MAX_ATTACHMENT_BYTES:
                    raise SendError(
                        "attachment_too_large", "the file is larger than 25 MB", retryable=False
                    )
        except MediaNotFound as exc:
            raise SendError("media_unavailable", "the file is gone", retryable=False) from exc
        form = aiohttp.FormData()
        for name, value in kind.items():
            form.add_field(name, value)
        form.add_field("recipient", orjson.dumps(recipient).decode())
        attachment = {"type": file.kind, "payload": {"is_reusable": False}}
        form.add_field("message", orjson.dumps({"attachment": attachment, **metadata}).decode())
        form.add_field(
            "filedata", bytes(data), filename=file.filename, content_type=file.content_type
        )
        return await self._post(url, form, _headers(token), UPLOAD_TIMEOUT)


async def typing_on(
    flavour: Flavour, inbox: InboxContext, to: str, http: aiohttp.ClientSession
) -> None:
    """``sender_action: typing_on`` (shown until the reply, or about 20 seconds)."""
    token = str(inbox.secrets.get(flavour.token_secret) or "")
    account = flavour.account_id(inbox.settings)
    if not token or account is None:
        raise SendError("not_configured", "no token or account id", retryable=False)
    body = {"recipient": {"id": to}, "sender_action": "typing_on"}
    async with http.post(
        api_url(inbox.settings, account, "messages"),
        data=orjson.dumps(body),
        headers={**_headers(token), "Content-Type": "application/json"},
        allow_redirects=False,
    ) as response:
        answer = await response.read()
        if response.status != 200:
            code, text, retryable = graph_error(response.status, answer)
            raise SendError(code, text, retryable=retryable)


# -- customers' files ----------------------------------------------------------------------------


def media_host_allowed(url: str, flavour: Flavour, settings: Mapping[str, Any]) -> bool:
    """Meta's file hosts, or the API base URL an inbox is set to (a local mock in tests)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        configured = urlsplit(api_root(settings))
        if parts.scheme == configured.scheme and host == (configured.hostname or "").lower():
            return parts.port == configured.port
    except ValueError:
        return False
    return parts.scheme == "https" and any(
        host == allowed or host.endswith("." + allowed) for allowed in flavour.media_hosts
    )


async def _limited(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > MAX_ATTACHMENT_BYTES:
            raise MediaFetchError(
                "the file is larger than the platform allows", retryable=False, too_large=True
            )
        yield chunk


@contextlib.asynccontextmanager
async def open_media(
    flavour: Flavour, inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
) -> AsyncIterator[FetchedMedia]:
    """A file behind a webhook's CDN URL. The URL is signed: the token is never sent with it."""
    if not media_host_allowed(ref.ref, flavour, inbox.settings):
        raise MediaFetchError(f"the file URL is not {flavour.label}'s", retryable=False)
    base = inbox.settings.get("api_base_url")
    async with get_checked(
        http,
        ref.ref,
        headers={"User-Agent": USER_AGENT},
        limit=MEDIA_TIMEOUT,
        allowed=lambda url: media_host_allowed(url, flavour, inbox.settings),
        trusted_origin=base if isinstance(base, str) and base else None,
    ) as download:
        if download.status != 200:
            retryable = download.status in (408, 429) or download.status >= 500
            raise MediaFetchError(
                f"the file download answered {download.status}", retryable=retryable
            )
        if (download.content_length or 0) > MAX_ATTACHMENT_BYTES:
            raise MediaFetchError(
                "the file is larger than the platform allows", retryable=False, too_large=True
            )
        said = download.content_type
        content_type = said if said and said != "application/octet-stream" else ref.content_type
        yield FetchedMedia(
            content_type=content_type or "application/octet-stream",
            filename=ref.filename,
            chunks=_limited(download.content.iter_chunked(CHUNK)),
        )


# -- a sender's profile --------------------------------------------------------------------------


class _Profile(msgspec.Struct):
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    profile_pic: str | None = None


async def fetch_profile(
    flavour: Flavour, inbox: InboxContext, address: str, http: aiohttp.ClientSession
) -> Profile | None:
    token = str(inbox.secrets.get(flavour.token_secret) or "")
    if not token or not NUMERIC_ID.fullmatch(address):
        return None
    async with http.get(
        api_url(inbox.settings, address),
        params={"fields": ",".join(flavour.profile_fields)},
        headers=_headers(token),
        timeout=LOOKUP_TIMEOUT,
        allow_redirects=False,
    ) as response:
        answer = await response.read()
        if response.status != 200:
            code, text, _ = graph_error(response.status, answer)
            raise MediaFetchError(f"profile lookup failed ({code}): {text}", retryable=False)
    try:
        found = msgspec.json.decode(answer, type=_Profile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MediaFetchError("the profile lookup gave no profile", retryable=False) from exc
    full = " ".join(p for p in (found.first_name, found.last_name) if p)
    # what the store cannot hold (NUL, a lone surrogate) must not cost the customer's message
    shown = (found.name or full or found.username or "").replace("\x00", "")[:200]
    name = shown.encode("utf-8", "replace").decode("utf-8") or None
    picture = found.profile_pic or ""
    if not picture.startswith(("https://", api_root(inbox.settings) + "/")):
        picture = ""
    return Profile(name=name, picture_url=picture[:2048] if picture else None)
