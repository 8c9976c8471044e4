"""The web chat widget channel's manifest."""

from channels._base import Capability, Manifest
from hub.events import MessageStatus

MANIFEST = Manifest(
    id="webchat",
    name="Web chat widget",
    capabilities=frozenset({Capability.TEXT, Capability.MEDIA, Capability.TYPING}),
    # signs the visitor tokens and checks a site's identity hashes; made by the hub when not given
    required_secrets=("identity_secret",),
    generated_secrets=("identity_secret",),
    optional_settings=(
        "allowed_origins",
        "prechat_fields",
        "visitor_messages_per_minute",
        "ip_messages_per_minute",
        "max_open_conversations",
        "upload_max_bytes",
        "upload_types",
        "require_identity",
        # offline mode: the email inbox replies go through to visitors who left an address
        "reply_email_inbox_id",
    ),
    # a reply is "sent" once stored: the visitor's socket reads it from the replay log
    statuses={"sent": MessageStatus.SENT},
    webhooks=False,
)
