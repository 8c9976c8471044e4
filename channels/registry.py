"""Every channel the hub knows. Adding a channel is its folder plus one line here."""

from __future__ import annotations

from channels._base import ChannelAdapter
from channels.api import ApiChannel

CHANNELS: dict[str, ChannelAdapter] = {adapter.manifest.id: adapter for adapter in (ApiChannel(),)}


def get_channel(channel_id: str) -> ChannelAdapter | None:
    return CHANNELS.get(channel_id)
