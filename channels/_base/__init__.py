"""What every channel shares: adapter contract, canonical inbound message, errors, signatures."""

from channels._base.adapter import (
    ChannelAdapter,
    InboundMessage,
    InboxContext,
    Manifest,
    Sender,
    WebhookRejected,
    WebhookRequest,
)
from channels._base.signatures import verify_hmac_sha256

__all__ = [
    "ChannelAdapter",
    "InboundMessage",
    "InboxContext",
    "Manifest",
    "Sender",
    "WebhookRejected",
    "WebhookRequest",
    "verify_hmac_sha256",
]
