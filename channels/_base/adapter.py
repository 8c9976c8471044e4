"""The channel adapter contract and the canonical inbound message every channel produces.

A channel verifies and parses provider traffic at the edge; everything after it (ingest, bus,
consumers) only ever sees :class:`InboundMessage`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from hub.events import Attachment


@dataclasses.dataclass(frozen=True)
class Manifest:
    id: str
    name: str
    capabilities: frozenset[str]
    #: secrets an inbox of this channel must have; a missing one makes every webhook a refusal
    required_secrets: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote: an address on this channel (phone, email, handle, or a customer's own id)."""

    channel: str
    address: str
    name: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class InboundMessage:
    provider_message_id: str
    sender: Sender
    content: str | None
    content_type: str = "text"
    attachments: tuple[Attachment, ...] = ()
    sent_at: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class InboxContext:
    id: str
    account_id: str
    channel: str
    name: str
    reopen_policy: str
    settings: Mapping[str, Any]
    secrets: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookRequest:
    method: str
    #: path and query as received; a channel that signs the URL joins it to the configured
    #: public base URL, since the Host a proxy forwards cannot be trusted
    path_qs: str
    content_type: str
    headers: Mapping[str, str]
    body: bytes


class WebhookRejected(Exception):
    """Bad input from outside: answered with ``status`` and a JSON error, nothing stored."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ChannelAdapter(Protocol):
    manifest: Manifest

    async def parse_webhook(
        self, request: WebhookRequest, inbox: InboxContext
    ) -> Sequence[InboundMessage]:
        """Verify the request (fail closed) and return the messages it carries.

        Raise :class:`WebhookRejected` for anything the sender got wrong.
        """
        ...
