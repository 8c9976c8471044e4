"""The API channel's manifest."""

from channels._base import Capability, Manifest
from hub.events import MessageStatus

MANIFEST = Manifest(
    id="api",
    name="API",
    capabilities=frozenset({Capability.TEXT, Capability.MEDIA, Capability.READ_RECEIPTS}),
    required_secrets=("signing_secret",),
    optional_settings=("outbound_url",),
    generated_secrets=("signing_secret",),
    # the statuses a customer's system may report for a reply it was given
    statuses={
        "sent": MessageStatus.SENT,
        "delivered": MessageStatus.DELIVERED,
        "read": MessageStatus.READ,
        "failed": MessageStatus.FAILED,
    },
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
