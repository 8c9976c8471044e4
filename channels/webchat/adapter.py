"""The web chat channel: visitors write over the Socket.IO namespace ``/widget`` (realtime's
widget module ingests their messages through the core), so there is no webhook; an agent's reply
is "sent" as soon as it is stored, because the visitor's socket reads it from the replay log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels._base import (
    BaseAdapter,
    InboxContext,
    OutboundMessage,
    SendResult,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
)
from channels.webchat.manifest import MANIFEST
from channels.webchat.settings import read_settings


class WebchatChannel(BaseAdapter):
    manifest = MANIFEST

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        read_settings(settings)

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        raise WebhookRejected(
            404, "no_webhook", "web chat visitors connect to the Socket.IO namespace /widget"
        )

    def delivers(self, inbox: InboxContext) -> bool:
        return True

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        return SendResult(provider_message_id=message.message_id)
