"""The Telegram adapter: updates in (checked against the webhook secret), customers' files through
``getFile``, replies out with ``sendMessage`` / ``sendPhoto`` / ``sendDocument``."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from channels._base import (
    BaseAdapter,
    ChannelEnv,
    FetchedMedia,
    InboxContext,
    MediaRef,
    OutboundMessage,
    SendResult,
    SettingsInvalid,
    WebhookRequest,
    WebhookResult,
    rate_setting,
)
from channels.telegram import inbound
from channels.telegram.bot_api import BotSender, call, open_media
from channels.telegram.manifest import DEFAULT_RATE, MANIFEST


class TelegramChannel(BaseAdapter):
    manifest = MANIFEST

    def __init__(self) -> None:
        self._sender: BotSender | None = None

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        base = settings.get("api_base_url")
        if base is not None and (
            not isinstance(base, str)
            or urlsplit(base).scheme not in ("https", "http")
            or not urlsplit(base).hostname
        ):
            raise SettingsInvalid("api_base_url must be an http(s) URL", "api_base_url")
        quote = settings.get("quote_replies")
        if quote is not None and quote not in (True, False, "true", "false", "1", "0"):
            raise SettingsInvalid("quote_replies is true or false", "quote_replies")

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        return inbound.parse(request, inbox)

    def fetch_media(
        self, inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
    ) -> AbstractAsyncContextManager[FetchedMedia]:
        return open_media(inbox, ref, http)

    async def typing(self, inbox: InboxContext, to: str, http: aiohttp.ClientSession) -> None:
        """``sendChatAction`` typing: shown for 5 seconds, or until the next message."""
        await call(http, inbox, "sendChatAction", json={"chat_id": to, "action": "typing"})

    def delivers(self, inbox: InboxContext) -> bool:
        return True

    def account_key(self, inbox: InboxContext) -> str:
        return f"telegram:{inbox.id}"

    def sender_limit(self, inbox: InboxContext) -> tuple[str, float]:
        return f"telegram:{inbox.id}", rate_setting(inbox.settings, DEFAULT_RATE)

    async def start(self, env: ChannelEnv) -> None:
        await super().start(env)
        self._sender = BotSender(env.http, env.media)

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        if self._sender is None:
            raise RuntimeError("start the adapter before sending")
        return await self._sender.send(inbox, message)
