"""Every channel the hub knows. Adding a channel is its folder plus one line in ``ADAPTERS``."""

from __future__ import annotations

from channels._base import ChannelAdapter
from channels.api import ApiChannel
from channels.sip import SipChannel
from channels.twilio import TwilioChannel
from channels.whatsapp_cloud import WhatsAppCloudChannel

ADAPTERS: tuple[type[ChannelAdapter], ...] = (
    ApiChannel,
    TwilioChannel,
    WhatsAppCloudChannel,
    SipChannel,
)

#: shared instances for manifests, webhook parsing and media fetching (they keep no state)
CHANNELS: dict[str, ChannelAdapter] = {kind.manifest.id: kind() for kind in ADAPTERS}


def get_channel(channel_id: str) -> ChannelAdapter | None:
    return CHANNELS.get(channel_id)


def new_adapters() -> dict[str, ChannelAdapter]:
    """Fresh instances for one process's outbound side, which starts and stops them."""
    return {kind.manifest.id: kind() for kind in ADAPTERS}
