"""The Twilio adapter: webhooks in, media fetched with the account's credentials, messages out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from channels._base import (
    BaseAdapter,
    ChannelEnv,
    FetchedMedia,
    InboxContext,
    MediaFetchError,
    MediaRef,
    OutboundMessage,
    SendResult,
    SettingsInvalid,
    WebhookRequest,
    WebhookResult,
    rate_setting,
)
from channels._base.redirects import get_checked
from channels.twilio import inbound
from channels.twilio.manifest import DEFAULT_RATE, KINDS, MANIFEST
from channels.twilio.outbound import TwilioSender, base_url, basic_auth
from hub.phone import to_e164

CHUNK = 64 * 1024
MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)


def _media_host_allowed(url: str, settings: Mapping[str, Any]) -> bool:
    """The account's credentials go only to Twilio (or the API base URL an inbox is set to)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        configured = urlsplit(base_url(settings))
        if parts.scheme == configured.scheme and host == (configured.hostname or "").lower():
            return parts.port == configured.port
    except ValueError:  # a port that is not a number
        return False
    return parts.scheme == "https" and (host == "twilio.com" or host.endswith(".twilio.com"))


#: where Twilio redirects a media URL to (its file storage); credentials never follow
STORAGE_HOSTS = ("twilio.com", "twiliocdn.com", "amazonaws.com")


def _media_hop_allowed(url: str, settings: Mapping[str, Any]) -> bool:
    """A hop of a media download: Twilio, its storage, or the inbox's configured API base."""
    if _media_host_allowed(url, settings):
        return True
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    return parts.scheme == "https" and any(
        host == allowed or host.endswith("." + allowed) for allowed in STORAGE_HOSTS
    )


def _configured_base(settings: Mapping[str, Any]) -> str | None:
    value = settings.get("api_base_url")
    return value if isinstance(value, str) and value else None


class TwilioChannel(BaseAdapter):
    manifest = MANIFEST

    def __init__(self) -> None:
        self._sender: TwilioSender | None = None

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        if settings.get("kind") not in KINDS:
            raise SettingsInvalid(f"kind must be one of {', '.join(KINDS)}", "kind")
        number, service = settings.get("from_number"), settings.get("messaging_service_sid")
        if not number and not service:
            raise SettingsInvalid("set from_number or messaging_service_sid", "from_number")
        if number is not None and (not isinstance(number, str) or to_e164(number) != number):
            raise SettingsInvalid(
                "from_number must be an E.164 number such as +94771234567", "from_number"
            )
        if service is not None and (not isinstance(service, str) or not service.startswith("MG")):
            raise SettingsInvalid("messaging_service_sid starts with MG", "messaging_service_sid")

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        return inbound.parse(request, inbox)

    @contextlib.asynccontextmanager
    async def fetch_media(
        self, inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
    ) -> AsyncIterator[FetchedMedia]:
        if not _media_host_allowed(ref.ref, inbox.settings):
            raise MediaFetchError("media URL is not Twilio's", retryable=False)
        sid, token = inbox.secrets.get("account_sid"), inbox.secrets.get("auth_token")
        if not sid or not token:
            raise MediaFetchError("the inbox has no Twilio credentials", retryable=False)
        # Twilio answers with a redirect to its media storage: followed by hand, every hop
        # checked, the credentials only to the first origin (channels/_base/redirects.py)
        headers = {"Authorization": basic_auth(str(sid), str(token))}
        async with get_checked(
            http,
            ref.ref,
            headers=headers,
            limit=MEDIA_TIMEOUT,
            allowed=lambda url: _media_hop_allowed(url, inbox.settings),
            trusted_origin=_configured_base(inbox.settings),
        ) as response:
            if response.status != 200:
                retryable = response.status in (408, 429) or response.status >= 500
                raise MediaFetchError(
                    f"Twilio media answered {response.status}", retryable=retryable
                )
            yield FetchedMedia(
                content_type=response.content_type or ref.content_type or "",
                filename=ref.filename,
                chunks=response.content.iter_chunked(CHUNK),
            )

    def delivers(self, inbox: InboxContext) -> bool:
        return True

    def account_key(self, inbox: InboxContext) -> str:
        return f"twilio:{inbox.secrets.get('account_sid') or inbox.id}"

    def sender_limit(self, inbox: InboxContext) -> tuple[str, float]:
        sender = inbox.settings.get("messaging_service_sid") or inbox.settings.get("from_number")
        return f"twilio:{sender or inbox.id}", rate_setting(inbox.settings, DEFAULT_RATE)

    async def start(self, env: ChannelEnv) -> None:
        await super().start(env)
        self._sender = TwilioSender(env.http)

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        if self._sender is None:
            raise RuntimeError("start the adapter before sending")
        return await self._sender.send(inbox, message, self.env.webhook_url(inbox))
