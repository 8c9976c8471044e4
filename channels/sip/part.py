"""The SIP user agent as a part of the hub: a source of calls, in the ``all`` and ``voice`` roles.

pjsua2 (a binary wheel) is imported only when the part starts, so processes of the other roles,
and ``hub migrate``, never load the SIP stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hub.contracts.part import Layer

if TYPE_CHECKING:
    from channels.sip.service import VoiceService
    from hub.app import Hub


class VoicePart:
    name = "voice"
    layer: Layer = "source"
    roles = frozenset({"all", "voice"})

    def __init__(self, roles: frozenset[str] | None = None) -> None:
        #: the worker child of a split role ``all`` runs it too
        self.roles = roles or VoicePart.roles
        self.service: VoiceService | None = None

    async def start(self, hub: Hub) -> None:
        from channels.sip.service import VoiceService

        self.service = VoiceService(hub, max_calls=hub.config.voice_max_calls)
        await self.service.start()

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()

    def health(self) -> Mapping[str, Any]:
        if self.service is not None and self.service.running:
            return {"voice": self.service.status()}
        return {}


def voice_of(hub: Hub) -> VoiceService | None:
    """The running voice service of a hub (tests and tools)."""
    part = hub.part(VoicePart.name)
    return part.service if isinstance(part, VoicePart) else None
