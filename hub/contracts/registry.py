"""The channels this process knows, handed to the core by the composition root.

The core validates inbox settings, checks what a channel can send and dispatches webhooks through
this registry without importing ``channels/``: ``server`` builds it from ``channels.registry`` and
calls :func:`install_channels` before anything else runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.contracts.channel import ChannelAdapter


class ChannelRegistry:
    def __init__(self, kinds: Iterable[type[ChannelAdapter]]) -> None:
        self._kinds = tuple(kinds)
        #: shared instances for manifests, webhook parsing and media fetching (they keep no state)
        self._shared: dict[str, ChannelAdapter] = {k.manifest.id: k() for k in self._kinds}

    def get(self, channel_id: str) -> ChannelAdapter | None:
        return self._shared.get(channel_id)

    def ids(self) -> list[str]:
        return sorted(self._shared)

    def fresh(self) -> dict[str, ChannelAdapter]:
        """New instances for one process's outbound side, which starts and stops them."""
        return {kind.manifest.id: kind() for kind in self._kinds}


_installed: ChannelRegistry | None = None


class NoChannelRegistry(RuntimeError):
    pass


def install_channels(registry: ChannelRegistry) -> None:
    global _installed
    _installed = registry


def channel_registry() -> ChannelRegistry:
    if _installed is None:
        raise NoChannelRegistry(
            "no channel registry installed: build the hub through server.compose"
        )
    return _installed


def get_channel(channel_id: str) -> ChannelAdapter | None:
    return channel_registry().get(channel_id)
