"""The voice channel as the registry sees it: settings checks. Calls arrive over SIP, not
webhooks (see :mod:`channels.sip.service`), and a voice inbox sends no text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from channels._base import (
    BaseAdapter,
    InboxContext,
    SettingsInvalid,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
)
from channels.sip.manifest import MANIFEST
from channels.sip.settings import parse_settings


class SipChannel(BaseAdapter):
    manifest = MANIFEST

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        try:
            parse_settings(settings)
        except (msgspec.ValidationError, ValueError) as exc:
            raise SettingsInvalid(str(exc)) from None

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        raise WebhookRejected(404, "no_webhooks", "calls reach a voice inbox over SIP")
