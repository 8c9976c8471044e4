"""Embeddings are stored as float32 bytes in the order migration 0045 converted the old ``real[]``
values to, so vectors written before and after the change read back alike."""

from __future__ import annotations

import asyncpg
import numpy as np
import pytest

from ai.vector_bytes import from_bytes, to_bytes

pytestmark = pytest.mark.postgres


async def test_the_stored_bytes_are_what_the_migration_made_of_a_real_array(db_dsn: str) -> None:
    vector = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    conn = await asyncpg.connect(db_dsn)
    try:
        converted = await conn.fetchval(
            """SELECT string_agg(float4send(x), ''::bytea ORDER BY i)
                 FROM unnest($1::real[]) WITH ORDINALITY AS u(x, i)""",
            vector.tolist(),
        )
        await conn.execute(
            """INSERT INTO ai_replies (id, account_id, conversation_id, content, embedding)
               VALUES ('r1', 'a', 'c', 'hello', $1)""",
            to_bytes(vector),
        )
        stored = await conn.fetchval("SELECT embedding FROM ai_replies WHERE id = 'r1'")
    finally:
        await conn.close()
    assert converted == to_bytes(vector) == stored
    back = from_bytes(stored)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, vector)


def test_bytes_that_are_not_float32_values_are_refused() -> None:
    with pytest.raises(ValueError, match="not float32"):
        from_bytes(b"\x00\x01\x02")
