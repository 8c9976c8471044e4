"""Inbound webhook of the API channel.

The body is JSON (see the README), signed with HMAC-SHA256 of the raw body under the inbox's
signing secret, sent as ``X-Hub-Signature-256: sha256=<hex>``. The signature is checked before the
body is even parsed, and a missing secret refuses everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import msgspec

from channels._base import (
    InboundMessage,
    InboxContext,
    Sender,
    WebhookRejected,
    WebhookRequest,
    verify_hmac_sha256,
)
from channels.api.manifest import MANIFEST, SIGNATURE_HEADER
from hub.events import Attachment

Short = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class ContactIn(msgspec.Struct, forbid_unknown_fields=False):
    identifier: Short
    name: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class AttachmentIn(msgspec.Struct):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    content_type: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    filename: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    size: Annotated[int, msgspec.Meta(ge=0)] | None = None


class ApiMessageIn(msgspec.Struct):
    contact: ContactIn
    message_id: Short | None = None
    text: Annotated[str, msgspec.Meta(max_length=65_536)] | None = None
    attachments: Annotated[list[AttachmentIn], msgspec.Meta(max_length=20)] = []
    sent_at: datetime | None = None


_decoder = msgspec.json.Decoder(ApiMessageIn)


def parse_body(body: bytes) -> InboundMessage:
    """Parse a verified body; every problem is a :class:`WebhookRejected` with a 4xx status."""
    try:
        data = _decoder.decode(body)
    except msgspec.ValidationError as exc:  # well-formed JSON, wrong shape
        raise WebhookRejected(422, "invalid_body", str(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WebhookRejected(400, "invalid_json", f"body is not valid UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        raise WebhookRejected(400, "invalid_json", "JSON is nested too deeply") from exc
    if data.message_id is None:
        raise WebhookRejected(
            422, "missing_provider_message_id", "`message_id` is required for idempotency"
        )
    if not data.text and not data.attachments:
        raise WebhookRejected(422, "empty_message", "a message needs `text` or `attachments`")
    return InboundMessage(
        provider_message_id=data.message_id,
        sender=Sender(channel="api", address=data.contact.identifier, name=data.contact.name),
        content=data.text,
        content_type="text",
        attachments=tuple(
            Attachment(url=a.url, content_type=a.content_type, filename=a.filename, size=a.size)
            for a in data.attachments
        ),
        sent_at=data.sent_at,
    )


class ApiChannel:
    manifest = MANIFEST

    async def parse_webhook(
        self, request: WebhookRequest, inbox: InboxContext
    ) -> Sequence[InboundMessage]:
        secret = inbox.secrets.get("signing_secret")
        if not verify_hmac_sha256(secret, request.body, request.headers.get(SIGNATURE_HEADER)):
            raise WebhookRejected(
                403, "invalid_signature", f"missing or wrong {SIGNATURE_HEADER} signature"
            )
        if request.content_type != "application/json":
            raise WebhookRejected(
                415, "unsupported_media_type", "send the body as application/json"
            )
        return [parse_body(request.body)]
