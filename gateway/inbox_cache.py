"""Inbox configuration with decrypted secrets, cached briefly so a webhook costs no extra query."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from hub.app import Hub
from hub.contracts.channel import InboxContext
from hub.store.reads import load_inbox


class InboxCache:
    """Inbox config with decrypted secrets, kept for a few seconds (unknown ids for one).

    One load per inbox at a time: when an entry expires under load, the hundreds of webhooks
    in flight for that inbox wait for the same query and decryption instead of each running
    their own (py-spy saw that herd at every expiry)."""

    def __init__(self, hub: Hub, ttl: float = 10.0, size: int = 10_000) -> None:
        self._hub = hub
        self._ttl = ttl
        self._size = size
        self._items: OrderedDict[str, tuple[float, InboxContext | None]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[InboxContext | None]] = {}

    def cached(self, inbox_id: str) -> InboxContext | None:
        """The inbox if it is cached and fresh (a synchronous fast path)."""
        hit = self._items.get(inbox_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    async def load(self, inbox_id: str) -> InboxContext | None:
        """Load from the database and cache, unknown ids too (briefly)."""
        loading = self._loading.get(inbox_id)
        if loading is not None:
            return await asyncio.shield(loading)
        loading = self._loading[inbox_id] = asyncio.get_running_loop().create_future()
        try:
            now = time.monotonic()
            inbox = await load_inbox(self._hub.pool, self._hub.box, inbox_id)
        except BaseException as exc:
            if self._loading.get(inbox_id) is loading:
                del self._loading[inbox_id]
            if isinstance(exc, Exception):
                loading.set_exception(exc)
                loading.exception()  # retrieved: the waiters (if any) raise it themselves
            else:
                loading.cancel()
            raise
        if self._loading.get(inbox_id) is loading:  # not invalidated meanwhile
            del self._loading[inbox_id]
            self._items[inbox_id] = (now + (self._ttl if inbox else 1.0), inbox)
            self._items.move_to_end(inbox_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        loading.set_result(inbox)
        return inbox

    def invalidate(self, inbox_id: str) -> None:
        """Forget one inbox now (its credentials or settings changed, or it was deleted); other
        gateway processes reload it within the TTL. A load already under way is not kept."""
        self._items.pop(inbox_id, None)
        self._loading.pop(inbox_id, None)
