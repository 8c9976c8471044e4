"""The media-store scenario's provider: a WhatsApp Cloud inbox whose Graph API is the local mock,
and signed webhooks each carrying a document the hub must fetch and store before it answers."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp

from channels._base.signatures import sign_hmac_sha256
from tests.support.graph_mock import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    VERSION,
    WABA_ID,
    graph_api,
    message_webhook,
    value_of,
    wire,
)
from tests.support.provider_mock import ProviderMock

#: the customer's document: larger than the file size limit the scenario sets on the hub
DOCUMENT = b"%PDF-1.7\n" + hashlib.sha512(b"media-store").digest() * 2048  # 128 KiB


async def whatsapp_inbox(base: str, admin_token: str, mock: ProviderMock) -> dict[str, Any]:
    graph_api(mock).token(ACCESS_TOKEN)
    body = {
        "channel": "whatsapp_cloud",
        "name": "Faults WhatsApp",
        "settings": {
            "phone_number_id": PHONE_NUMBER_ID,
            "business_account_id": WABA_ID,
            "api_base_url": mock.url,
            "api_version": VERSION,
        },
        "credentials": {
            "access_token": ACCESS_TOKEN,
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
        },
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/api/v1/inboxes",
            json=body,
            headers={"Authorization": f"Bearer {admin_token}"},
        ) as response,
    ):
        made: dict[str, Any] = await response.json()
        if response.status != 201:
            raise RuntimeError(f"inbox not created: {response.status} {made}")
    return made


class DocumentWebhooks:
    """``make(pmid)``: a Meta-signed webhook whose document message ``pmid`` holds the file."""

    def __init__(self, mock: ProviderMock) -> None:
        self.media_id = graph_api(mock).add_media(DOCUMENT, "application/pdf")

    def make(self, pmid: str) -> tuple[bytes, dict[str, str]]:
        payload = message_webhook("document", wamid=pmid)
        value_of(payload)["messages"][0]["document"]["id"] = self.media_id
        body = wire(payload)
        return body, {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_hmac_sha256(APP_SECRET, body),
        }
