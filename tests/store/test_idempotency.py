"""Consumer idempotency claims: a redelivered event id is claimed only once per consumer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from hub.app import Hub
from hub.config import Config
from hub.consumers.claim_pruning import ClaimPruner, prune_claims
from hub.consumers.idempotency import claim
from hub.ids import first_id_at, new_id
from server.parts import make_parts

pytestmark = pytest.mark.postgres


async def test_claim_returns_only_new_ids_per_consumer(db: asyncpg.Connection[Any]) -> None:
    assert await claim(db, "a", ["e1", "e2"]) == {"e1", "e2"}
    assert await claim(db, "a", ["e2", "e3"]) == {"e3"}
    assert await claim(db, "b", ["e2"]) == {"e2"}, "consumers are independent"


async def test_a_rolled_back_claim_can_be_claimed_again(db: asyncpg.Connection[Any]) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction():
            assert await claim(db, "a", ["e1"]) == {"e1"}
            raise RuntimeError("the effect failed")
    assert await claim(db, "a", ["e1"]) == {"e1"}


async def test_claims_older_than_the_cut_are_pruned_in_chunks(db: asyncpg.Connection[Any]) -> None:
    now = time.time_ns() // 1_000_000
    day = 86_400_000

    def made_at(ms: int, n: int) -> str:  # the n-th id made in that millisecond
        floor = first_id_at(ms)
        return floor[:-2] + f"{n:02d}"

    old = [made_at(now - 40 * day, n) for n in range(5)]
    recent = [made_at(now - day, 0), new_id()]
    foreign = ["0-not-one-of-ours", "e1"]  # ids the hub did not make are never taken for old
    await claim(db, "a", [*old, *recent, *foreign])
    await claim(db, "b", old[:2])
    removed = await prune_claims(db, now - 30 * day, chunk=2)
    assert removed == 7
    left = {
        (r["consumer"], r["event_id"])
        for r in await db.fetch("SELECT consumer, event_id FROM processed_events")
    }
    assert left == {("a", i) for i in [*recent, *foreign]}
    # a redelivered recent event is still a no-op; nothing more to prune
    assert await claim(db, "a", recent) == set()
    assert await prune_claims(db, now - 30 * day) == 0


async def test_the_hub_runs_the_pruner_with_its_setting(hub: Hub, hub_config: Config) -> None:
    assert any(isinstance(part, ClaimPruner) for part in make_parts(hub_config))
    now = time.time_ns() // 1_000_000
    old = first_id_at(now - (hub_config.claim_days + 1) * 86_400_000)[:-1] + "1"
    young = first_id_at(now - (hub_config.claim_days - 1) * 86_400_000)[:-1] + "1"
    async with hub.pool.acquire() as conn:
        await claim(conn, "a", [old, young])

    async def claims() -> list[str]:
        rows = await hub.pool.fetch("SELECT event_id FROM processed_events WHERE consumer = 'a'")
        return [r["event_id"] for r in rows]

    pruner = ClaimPruner()
    await pruner.start(hub)  # prunes at once, then hourly
    try:
        async with asyncio.timeout(10):
            while len(await claims()) > 1:
                await asyncio.sleep(0.05)
    finally:
        await pruner.stop()
    assert await claims() == [young]
