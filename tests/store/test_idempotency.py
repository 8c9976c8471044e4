"""Consumer idempotency claims: a redelivered event id is claimed only once per consumer."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from hub.consumers.idempotency import claim

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
