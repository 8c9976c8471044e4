"""The adapter both Meta DM channels are: the settings check, webhooks, files, profiles and
sends, parameterised by a :class:`Flavour`."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from channels._base import (
    BaseAdapter,
    ChannelEnv,
    FetchedMedia,
    InboxContext,
    MediaRef,
    OutboundMessage,
    Profile,
    SendResult,
    SettingsInvalid,
    WebhookRequest,
    WebhookResult,
    rate_setting,
)
from channels._meta import graph, webhook
from channels._meta.flavour import NUMERIC_ID, VERSION, Flavour

#: Meta's documented limit is per page and generous; this keeps one inbox from flooding it
DEFAULT_RATE = 20.0


class MetaAdapter(BaseAdapter):
    flavour: ClassVar[Flavour]

    def __init__(self) -> None:
        self._sender: graph.SendApi | None = None

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        key = self.flavour.account_setting
        if self.flavour.account_id(settings) is None:
            raise SettingsInvalid(f"{key} is the account's numeric id", key)
        app_id = settings.get("app_id")
        if app_id is not None and (not isinstance(app_id, str) or not NUMERIC_ID.fullmatch(app_id)):
            raise SettingsInvalid("app_id is the Meta app's numeric id", "app_id")
        human = settings.get("human_agent")
        if human is not None and human not in (True, False, "true", "false", "1", "0"):
            raise SettingsInvalid("human_agent is true or false", "human_agent")
        base = settings.get("api_base_url")
        if base is not None and (
            not isinstance(base, str)
            or urlsplit(base).scheme not in ("https", "http")
            or not urlsplit(base).hostname
        ):
            raise SettingsInvalid("api_base_url must be an http(s) URL", "api_base_url")
        version = settings.get("api_version")
        if version is not None and (not isinstance(version, str) or not VERSION.fullmatch(version)):
            raise SettingsInvalid("api_version looks like v23.0", "api_version")

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        return webhook.parse(self.flavour, request, inbox)

    def fetch_media(
        self, inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
    ) -> AbstractAsyncContextManager[FetchedMedia]:
        return graph.open_media(self.flavour, inbox, ref, http)

    async def sender_profile(
        self, inbox: InboxContext, address: str, http: aiohttp.ClientSession
    ) -> Profile | None:
        return await graph.fetch_profile(self.flavour, inbox, address, http)

    async def typing(self, inbox: InboxContext, to: str, http: aiohttp.ClientSession) -> None:
        await graph.typing_on(self.flavour, inbox, to, http)

    def delivers(self, inbox: InboxContext) -> bool:
        return True

    def account_key(self, inbox: InboxContext) -> str:
        return f"{self.manifest.id}:{self.flavour.account_id(inbox.settings) or inbox.id}"

    def sender_limit(self, inbox: InboxContext) -> tuple[str, float]:
        return self.account_key(inbox), rate_setting(inbox.settings, DEFAULT_RATE)

    async def start(self, env: ChannelEnv) -> None:
        await super().start(env)
        self._sender = graph.SendApi(self.flavour, env.http, env.media)

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        if self._sender is None:
            raise RuntimeError("start the adapter before sending")
        return await self._sender.send(inbox, message)
