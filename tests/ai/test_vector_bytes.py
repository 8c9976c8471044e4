"""Embeddings are stored as float32 bytes: migration 0045 turns the ``real[]`` vectors stored
before it into exactly the bytes the hub writes now, so old and new vectors read back alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import numpy as np
import pytest

from ai.vector_bytes import from_bytes, to_bytes
from hub.store import migrate as migrations
from tests.conftest import temporary_database

pytestmark = pytest.mark.postgres

BYTES_FROM = 45  # the migration that makes embeddings bytes


@pytest.fixture
async def empty_db(pg_dsn: str) -> AsyncIterator[str]:
    async with temporary_database(pg_dsn, template=None) as dsn:
        yield dsn


async def test_vectors_stored_as_real_arrays_become_the_bytes_the_hub_writes(
    empty_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vector = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    every = migrations.available_migrations()
    conn = await asyncpg.connect(empty_db)
    try:
        with monkeypatch.context() as before:
            before.setattr(
                migrations, "available_migrations", lambda: [m for m in every if m[0] < BYTES_FROM]
            )
            await migrations.migrate(conn)
        await conn.execute(
            "INSERT INTO ai_message_vectors VALUES ('m1', 'a', 'c', 'p', $1)", vector.tolist()
        )
        await conn.execute(
            "INSERT INTO ai_replies VALUES ('r1', 'a', 'c', 'p', 'hello', $1)", vector.tolist()
        )
        applied = await migrations.migrate(conn)
        converted = [
            await conn.fetchval(f"SELECT embedding FROM {table}")
            for table in ("ai_message_vectors", "ai_replies")
        ]
    finally:
        await conn.close()
    assert applied[0].startswith(f"{BYTES_FROM:04d}_")
    assert converted == [to_bytes(vector)] * 2
    back = from_bytes(converted[0])
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, vector)


def test_bytes_that_are_not_float32_values_are_refused() -> None:
    with pytest.raises(ValueError, match="not float32"):
        from_bytes(b"\x00\x01\x02")
