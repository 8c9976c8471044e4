"""Defaults every channel adapter starts from, and the shared reading of rate settings."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from hub.contracts.channel import (
    ChannelEnv,
    FetchedMedia,
    InboxContext,
    Manifest,
    MediaFetchError,
    MediaRef,
    OutboundMessage,
    Profile,
    SendError,
    SendResult,
    SettingsInvalid,
)


def rate_setting(
    settings: Mapping[str, Any], default: float, key: str = "rate_per_second"
) -> float:
    """Messages per second from an inbox's settings; anything unusable means the default."""
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        rate = float(value)
    except ValueError:
        return default
    return rate if 0 < rate <= 10_000 else default


class BaseAdapter:
    """Defaults for what a channel may not have: no provider-held media, no outbound."""

    manifest: Manifest
    #: set by ``start`` (outbound instances only)
    env: ChannelEnv

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        missing = [k for k in self.manifest.required_settings if not settings.get(k)]
        if missing:
            raise SettingsInvalid(f"missing settings: {', '.join(missing)}", missing[0])

    def fetch_media(
        self, inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
    ) -> AbstractAsyncContextManager[FetchedMedia]:
        raise MediaFetchError(f"{self.manifest.id} holds no media", retryable=False)

    def delivers(self, inbox: InboxContext) -> bool:
        return False

    async def typing(self, inbox: InboxContext, to: str, http: aiohttp.ClientSession) -> None:
        return None

    async def sender_profile(
        self, inbox: InboxContext, address: str, http: aiohttp.ClientSession
    ) -> Profile | None:
        return None

    def account_key(self, inbox: InboxContext) -> str:
        return f"{self.manifest.id}:{inbox.id}"

    def sender_limit(self, inbox: InboxContext) -> tuple[str, float]:
        return f"{self.manifest.id}:{inbox.id}", rate_setting(inbox.settings, 10.0)

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        raise SendError("not_supported", f"{self.manifest.id} does not send", retryable=False)

    async def start(self, env: ChannelEnv) -> None:
        self.env = env

    async def stop(self) -> None:
        pass
