"""Sending through Twilio's Messages API with the twilio SDK (``create_async``).

One SDK client per (account, API base URL), all on the hub's shared aiohttp session. Twilio's
error answers become :class:`SendError` with Twilio's own code (``21211``); 429 and 5xx are
retryable, everything else is final.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels._base import InboxContext, OutboundMessage, SendError, SendResult
from channels.twilio.manifest import API_BASE_URL

RETRYABLE_CODES = {"20429", "20500", "20503"}
TIMEOUT = 20.0
_NO_ENVIRONMENT = {"TWILIO_EDGE": "", "TWILIO_REGION": ""}


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class _SharedSession(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The SDK's HTTP client on a session the hub owns (one pool, closed by the hub), sending
    credentials as a header (aiohttp's ``auth=`` is deprecated)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(pool_connections=False)
        self.session = session

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's signature
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = basic_auth(*auth)
        limit = aiohttp.ClientTimeout(total=timeout) if timeout else self.session.timeout
        async with self.session.request(
            method.upper(),
            url,
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            allow_redirects=allow_redirects,
            timeout=limit,
        ) as response:
            return Response(response.status, await response.text(), response.headers)

    async def close(self) -> None:
        pass  # not ours to close


def base_url(settings: Mapping[str, Any]) -> str:
    value = settings.get("api_base_url")
    return value.rstrip("/") if isinstance(value, str) and value else API_BASE_URL


class TwilioSender:
    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = _SharedSession(http)
        self._clients: dict[tuple[str, str, str], Any] = {}

    def _client(self, inbox: InboxContext) -> Any:
        sid = str(inbox.secrets.get("account_sid") or "")
        token = str(inbox.secrets.get("auth_token") or "")
        if not sid or not token:
            raise SendError(
                "not_configured", "the inbox has no Twilio credentials", retryable=False
            )
        base = base_url(inbox.settings)
        key = (sid, token, base)
        client = self._clients.get(key)
        if client is None:
            # no region or edge from the process environment: the URL is exactly ``base``
            client = Client(sid, token, http_client=self._http, environment=_NO_ENVIRONMENT)
            client.api.base_url = base
            self._clients[key] = client
        return client

    async def send(
        self,
        inbox: InboxContext,
        message: OutboundMessage,
        status_callback: str | None,
    ) -> SendResult:
        settings = inbox.settings
        whatsapp = settings.get("kind") == "whatsapp"
        prefix = "whatsapp:" if whatsapp else ""
        media = [str(a.get("url") or "") for a in message.attachments]
        if any(not url.startswith("https://") for url in media):
            raise SendError(
                "media_not_public",
                "Twilio fetches attachments itself; files in the hub have no public URL yet",
                retryable=False,
            )
        if not message.content and not media:
            raise SendError("empty_message", "nothing to send", retryable=False)
        arguments: dict[str, Any] = {"to": prefix + message.to}
        if message.content:
            arguments["body"] = message.content
        if media:
            arguments["media_url"] = media
        if settings.get("messaging_service_sid"):
            arguments["messaging_service_sid"] = settings["messaging_service_sid"]
        if settings.get("from_number"):
            arguments["from_"] = prefix + str(settings["from_number"])
        if status_callback:
            arguments["status_callback"] = status_callback
        client = self._client(inbox)
        try:
            async with asyncio.timeout(TIMEOUT):
                created = await client.messages.create_async(**arguments)
        except TwilioException as exc:
            raise _send_error(exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError("network_error", repr(exc), retryable=True) from exc
        return SendResult(str(created.sid))


def _send_error(exc: TwilioException) -> SendError:
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    text = str(getattr(exc, "msg", "") or getattr(exc, "detail", "") or getattr(exc, "title", ""))
    text = text.removeprefix("Unable to create record: ")
    code_text = str(code) if code is not None else f"http_{status}"
    retryable = (isinstance(status, int) and (status == 429 or status >= 500)) or (
        code_text in RETRYABLE_CODES
    )
    return SendError(code_text, text or "Twilio refused the message", retryable=retryable)
