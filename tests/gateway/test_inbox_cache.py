"""The inbox cache loads an inbox once however many webhooks ask for it at the same moment (an
expiry under load used to send every request in flight to the database and the decryption)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.inbox_cache import InboxCache
from hub.actions.setup import create_inbox
from hub.app import Hub
from hub.store.reads import load_inbox as real


@pytest.fixture
def counted_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    loads: list[str] = []

    async def load_inbox(*args: Any) -> Any:
        loads.append(args[-1])
        return await real(*args)

    monkeypatch.setattr("gateway.inbox_cache.load_inbox", load_inbox)
    return loads


async def test_concurrent_misses_share_one_load(hub: Hub, counted_loads: list[str]) -> None:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name="herd"
        )
    cache = InboxCache(hub)
    found = await asyncio.gather(*(cache.load(made.id) for _ in range(50)))
    assert counted_loads == [made.id]
    assert {inbox.id for inbox in found if inbox is not None} == {made.id}
    assert cache.cached(made.id) is not None
    cache.invalidate(made.id)  # an administrator changed it: the next webhook loads it again
    assert cache.cached(made.id) is None
    await cache.load(made.id)
    assert counted_loads == [made.id, made.id]


async def test_a_load_under_way_when_invalidated_is_not_kept(
    hub: Hub, counted_loads: list[str]
) -> None:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name="stale"
        )
    cache = InboxCache(hub)
    loading = asyncio.ensure_future(cache.load(made.id))
    await asyncio.sleep(0)  # the load has begun
    cache.invalidate(made.id)
    assert await loading is not None
    assert cache.cached(made.id) is None  # it may have read the old settings
