"""The web chat channel through the channel conformance suite. It has no webhooks: its visitors
write over the Socket.IO namespace ``/widget`` (a real socket.io client here), so the harness's
``receive`` is a visitor's message, and every request to its webhook URL is refused."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest

from channels.webchat.manifest import MANIFEST
from hub.actions.setup import create_inbox
from hub.app import Hub
from tests.channels.conformance import ChannelConformance, Client, Harness, Request
from tests.realtime.widget_client import Visitor
from tests.support.provider_mock import Failure, ProviderMock

pytestmark = pytest.mark.postgres
SITE = "https://shop.example"
JSON = {"Content-Type": "application/json"}


class WebchatHarness(Harness):
    manifest = MANIFEST
    provider_statuses = ("sent",)
    send_operation = None
    transient_failure = Failure(503)
    transient_code = ""
    permanent_failure = Failure(400)
    permanent_code = ""
    delivered_status = "sent"
    sent_status = "sent"

    def __init__(self) -> None:
        self.visitor: Visitor | None = None
        #: the stored message of each client id the visitor sent
        self.stored: dict[str, str] = {}

    async def create_inbox(self, hub: Hub, mock: ProviderMock) -> str:
        async with hub.pool.acquire() as conn:
            created = await create_inbox(
                conn, hub.box, account_id=hub.account_id, channel="webchat", name="Website",
                settings={"allowed_origins": SITE},
            )  # fmt: skip
        return created.id

    def _path(self) -> str:
        return f"/webhooks/webchat/{self.inbox_id}"

    def inbound(self, provider_message_id: str, text: str = "hello") -> Request:
        body = orjson.dumps({"client_id": provider_message_id, "content": text})
        return Request(self._path(), body, JSON)

    def forged(self, provider_message_id: str) -> list[tuple[str, Request]]:
        body = self.inbound(provider_message_id).body
        signed = hmac.new(b"guessed secret", body, hashlib.sha256).hexdigest()
        return [
            ("unsigned", Request(self._path(), body, JSON)),
            ("signed as Meta signs", Request(
                self._path(), body, {**JSON, "X-Hub-Signature-256": f"sha256={signed}"}
            )),
            ("a visitor token in a header", Request(
                self._path(), body, {**JSON, "Authorization": "Bearer visitor-token"}
            )),
        ]  # fmt: skip

    def malformed(self) -> list[tuple[str, Request]]:
        return [
            ("not JSON", Request(self._path(), b"{", JSON)),
            ("empty", Request(self._path(), b"", JSON)),
        ]

    def status(self, provider_message_id: str, provider_status: str) -> Request:
        body = orjson.dumps({"id": provider_message_id, "status": provider_status})
        return Request(self._path(), body, JSON)

    async def receive(self, client: Client, provider_message_id: str, text: str = "hello") -> None:
        if self.visitor is None:
            self.visitor = Visitor()
            await self.visitor.connect(str(client.make_url("/")), SITE, inbox_id=self.inbox_id)
        answer: dict[str, Any] = await self.visitor.say(text, provider_message_id)
        assert answer.get("ok"), answer
        self.stored[provider_message_id] = answer["id"]

    async def conversation_of(self, hub: Hub, provider_message_id: str) -> str:
        found: str = await hub.pool.fetchval(
            "SELECT conversation_id FROM messages WHERE id = $1", self.stored[provider_message_id]
        )
        return found

    async def close(self) -> None:
        if self.visitor is not None:
            await self.visitor.close()
            self.visitor = None


class TestWebchatConformance(ChannelConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        return WebchatHarness()
