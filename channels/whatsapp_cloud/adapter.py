"""The WhatsApp Cloud API adapter: webhooks in, customers' files fetched through the Graph API,
messages (text, files, templates) out within WhatsApp's 24-hour customer-service window."""

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
from channels.whatsapp_cloud import inbound
from channels.whatsapp_cloud.graph import (
    PHONE_NUMBER_ID,
    VERSION,
    GraphSender,
    open_media,
    phone_number_id,
)
from channels.whatsapp_cloud.manifest import DEFAULT_RATE, MANIFEST, SERVICE_WINDOW


class WhatsAppCloudChannel(BaseAdapter):
    manifest = MANIFEST

    def __init__(self) -> None:
        self._sender: GraphSender | None = None

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        number = settings.get("phone_number_id")
        if not isinstance(number, str) or not PHONE_NUMBER_ID.fullmatch(number):
            raise SettingsInvalid(
                "phone_number_id is the number's Graph id (digits)", "phone_number_id"
            )
        account = settings.get("business_account_id")
        if account is not None and (
            not isinstance(account, str) or not PHONE_NUMBER_ID.fullmatch(account)
        ):
            raise SettingsInvalid(
                "business_account_id is the WABA's Graph id (digits)", "business_account_id"
            )
        base = settings.get("api_base_url")
        if base is not None and (
            not isinstance(base, str)
            or urlsplit(base).scheme not in ("https", "http")
            or not urlsplit(base).hostname
        ):
            raise SettingsInvalid("api_base_url must be an http(s) URL", "api_base_url")
        version = settings.get("api_version")
        if version is not None and (not isinstance(version, str) or not VERSION.fullmatch(version)):
            raise SettingsInvalid("api_version looks like v23.0")

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        return inbound.parse(request, inbox)

    def fetch_media(
        self, inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
    ) -> AbstractAsyncContextManager[FetchedMedia]:
        return open_media(inbox, ref, http)

    def delivers(self, inbox: InboxContext) -> bool:
        return True

    def account_key(self, inbox: InboxContext) -> str:
        account = inbox.settings.get("business_account_id") or phone_number_id(inbox.settings)
        return f"whatsapp_cloud:{account or inbox.id}"

    def sender_limit(self, inbox: InboxContext) -> tuple[str, float]:
        number = phone_number_id(inbox.settings) or inbox.id
        return f"whatsapp_cloud:{number}", rate_setting(inbox.settings, DEFAULT_RATE)

    async def start(self, env: ChannelEnv) -> None:
        await super().start(env)
        self._sender = GraphSender(env.http, env.media)

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        if self._sender is None:
            raise RuntimeError("start the adapter before sending")
        return await self._sender.send(inbox, message, SERVICE_WINDOW.total_seconds())
