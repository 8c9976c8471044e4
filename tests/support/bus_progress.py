"""Waiting in tests for a consumer group to have handled everything published so far.

Consumers that record nothing for the events they have no work for (no claim row: one statement
per batch) cannot be waited for through ``processed_events``; the bus's own lag says it."""

from __future__ import annotations

import asyncio

from hub.app import Hub


async def caught_up(hub: Hub, group: str, within: float = 20) -> None:
    """Until the outbox is empty and ``group`` has no record left to handle."""
    assert hub.bus is not None
    async with asyncio.timeout(within):
        while await hub.pool.fetchval("SELECT count(*) FROM outbox") or sum(
            n for (g, _), n in hub.bus.lag().items() if g == group
        ):
            await asyncio.sleep(0.05)
