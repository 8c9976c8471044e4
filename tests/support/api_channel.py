"""Helpers to build signed API-channel webhooks, as a customer's system would send them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from channels._base.signatures import sign_hmac_sha256
from hub.actions.setup import CreatedInbox, create_inbox

if TYPE_CHECKING:
    from hub.app import Hub


def api_body(
    message_id: str | None,
    identifier: str = "+94771234567",
    text: str | None = "hello",
    name: str | None = "Nimal",
    **extra: Any,
) -> bytes:
    data: dict[str, Any] = {"contact": {"identifier": identifier, "name": name}, **extra}
    if message_id is not None:
        data["message_id"] = message_id
    if text is not None:
        data["text"] = text
    return orjson.dumps(data)


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_hmac_sha256(secret, body),
    }


class ApiInbox:
    """An API-channel inbox of a running hub that posts signed webhooks to a gateway, as a
    customer's system would."""

    def __init__(self, made: CreatedInbox, base: str) -> None:
        self.made = made
        self.id = made.id
        self.base = base.rstrip("/")

    @classmethod
    async def create(cls, hub: Hub, base: str, name: str = "Shop") -> ApiInbox:
        async with hub.pool.acquire() as conn:
            made = await create_inbox(
                conn, hub.box, account_id=hub.account_id, channel="api", name=name
            )
        return cls(made, base)

    async def post(self, session: aiohttp.ClientSession, body: bytes) -> dict[str, Any]:
        """Send a signed webhook; the gateway must accept it. Returns its JSON answer."""
        async with session.post(
            f"{self.base}/webhooks/api/{self.id}",
            data=body,
            headers=signed_headers(self.made.secrets["signing_secret"], body),
        ) as response:
            assert response.status == 200, await response.text()
            answer: dict[str, Any] = await response.json()
            return answer

    async def send(self, body: bytes) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            return await self.post(session, body)
