"""The SendGrid channel's manifest.

Inbox settings: ``address`` (the From of replies; required, on a domain authenticated in
SendGrid), ``from_name``, ``plus_addressing``, ``use_reply_to``, ``thread_window_days``,
``max_attachment_bytes`` (as for email), ``rate_per_second`` (10), ``api_base_url`` (default
``https://api.sendgrid.com``; tests point it at a local mock).
Secrets: ``api_key`` (Mail Send), ``parse_token`` (made by the hub: the secret last segment of
the Inbound Parse URL), ``parse_username`` and ``parse_password`` (optional HTTP basic auth on
that URL), ``event_public_key`` (the Event Webhook's verification key; without it every event
post is refused).
"""

from channels._base import Capability, Manifest
from hub.events import MessageStatus

MANIFEST = Manifest(
    id="sendgrid",
    name="Email (SendGrid)",
    capabilities=frozenset({Capability.TEXT, Capability.MEDIA, Capability.READ_RECEIPTS}),
    required_secrets=("api_key", "parse_token"),
    required_settings=("address",),
    optional_settings=(
        "from_name",
        "plus_addressing",
        "use_reply_to",
        "thread_window_days",
        "max_attachment_bytes",
        "rate_per_second",
        "api_base_url",
    ),
    optional_secrets=("parse_username", "parse_password", "event_public_key"),
    generated_secrets=("parse_token",),
    identity="email",
    # the Event Webhook's delivery and engagement events that say where a mail is
    statuses={
        "processed": MessageStatus.SENT,
        "deferred": MessageStatus.SENT,
        "delivered": MessageStatus.DELIVERED,
        "open": MessageStatus.READ,
        "bounce": MessageStatus.FAILED,
        "dropped": MessageStatus.FAILED,
        # it reached the mailbox (the recipient then marked it as spam)
        "spamreport": MessageStatus.DELIVERED,
    },
)

#: events that say nothing about delivery (clicks, unsubscribes): acknowledged and skipped
IGNORED_EVENTS = frozenset(
    {"click", "unsubscribe", "group_unsubscribe", "group_resubscribe", "machine_opened"}
)
