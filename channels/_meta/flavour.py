"""What differs between Meta's two DM channels that share the Messenger Platform's formats:
Facebook Messenger (a Page) and Instagram Direct (a professional Instagram account)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from channels._base import Capability, Manifest
from hub.events import MessageStatus

API_BASE_URL = "https://graph.facebook.com"
API_VERSION = "v23.0"
VERSION = re.compile(r"v[0-9]{1,3}\.[0-9]{1,3}")
#: page, Instagram account and user ids are numbers
NUMERIC_ID = re.compile(r"[0-9]{1,32}")
#: the standard messaging window: free replies this long after the person's last message
STANDARD_WINDOW = timedelta(hours=24)
#: the ``HUMAN_AGENT`` tag lets a person (not a bot) answer this long after it
HUMAN_AGENT_WINDOW = timedelta(days=7)
#: what the Send API takes in one message
MAX_TEXT = 2000
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
#: the metadata the hub puts on what it sends comes back on the echo: that is how an echo of
#: the hub's own message is told from one sent elsewhere
METADATA_PREFIX = "hub:"
#: every status report the platform makes about the business's messages, mapped to ours: the
#: echo of a message (it was sent), ``delivery`` and ``read``
STATUSES = {
    "echo": MessageStatus.SENT,
    "delivery": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
}
CAPABILITIES = frozenset(
    {
        Capability.TEXT,
        Capability.MEDIA,
        Capability.READ_RECEIPTS,
        Capability.QUICK_REPLIES,
        Capability.TYPING,
    }
)


@dataclasses.dataclass(frozen=True)
class Flavour:
    manifest: Manifest
    #: the ``object`` of the platform's webhook deliveries
    object: str
    #: the setting naming the account the inbox is (its id is each entry's ``id``)
    account_setting: str
    #: the secret holding the Graph token
    token_secret: str
    #: hosts a customer's file may be downloaded from
    media_hosts: tuple[str, ...]
    #: the user-profile fields asked for, and the one that is the display name
    profile_fields: tuple[str, ...]
    #: what the platform is called in messages to agents
    label: str
    #: the Send API takes ``metadata`` and returns it on the echo (Messenger; not Instagram)
    echo_metadata: bool = True

    def account_id(self, settings: Mapping[str, Any]) -> str | None:
        value = settings.get(self.account_setting)
        return value if isinstance(value, str) and NUMERIC_ID.fullmatch(value) else None


def manifest(
    *, id: str, name: str, identity: str, account_setting: str, token_secret: str
) -> Manifest:
    return Manifest(
        id=id,
        name=name,
        capabilities=CAPABILITIES,
        required_secrets=(token_secret, "app_secret", "verify_token"),
        required_settings=(account_setting,),
        optional_settings=("app_id", "human_agent"),
        generated_secrets=("verify_token",),
        identity=identity,
        statuses=STATUSES,
        # the longest any reply may wait (with the HUMAN_AGENT tag); the adapter enforces the
        # 24 hours without it
        reply_window=HUMAN_AGENT_WINDOW,
        get_handshake=True,
        profiles=True,
    )
