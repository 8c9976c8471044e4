"""Inbox configuration with decrypted secrets, cached briefly so a webhook costs no extra query."""

from __future__ import annotations

import time
from collections import OrderedDict

from hub.app import Hub
from hub.contracts.channel import InboxContext
from hub.store.reads import load_inbox


class InboxCache:
    """Inbox config with decrypted secrets, kept for a few seconds (unknown ids for one)."""

    def __init__(self, hub: Hub, ttl: float = 10.0, size: int = 10_000) -> None:
        self._hub = hub
        self._ttl = ttl
        self._size = size
        self._items: OrderedDict[str, tuple[float, InboxContext | None]] = OrderedDict()

    def cached(self, inbox_id: str) -> InboxContext | None:
        """The inbox if it is cached and fresh (a synchronous fast path)."""
        hit = self._items.get(inbox_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    async def load(self, inbox_id: str) -> InboxContext | None:
        """Load from the database and cache, unknown ids too (briefly)."""
        now = time.monotonic()
        inbox = await load_inbox(self._hub.pool, self._hub.box, inbox_id)
        self._items[inbox_id] = (now + (self._ttl if inbox else 1.0), inbox)
        self._items.move_to_end(inbox_id)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return inbox

    def invalidate(self, inbox_id: str) -> None:
        """Forget one inbox now (its credentials or settings changed, or it was deleted); other
        gateway processes reload it within the TTL."""
        self._items.pop(inbox_id, None)
