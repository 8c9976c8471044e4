-- Embeddings as float32 bytes (ai/vector_bytes.py): as real[] each value went through asyncpg's
-- array codec one Python float at a time, 12 ms of the event loop per 100 vectors written. The
-- stored values are kept: float4send gives each one's four bytes in network order.
CREATE FUNCTION pg_temp.float4_bytes(v real[]) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(string_agg(float4send(x), ''::bytea ORDER BY i), ''::bytea)
      FROM unnest(v) WITH ORDINALITY AS u(x, i)
$$;
ALTER TABLE ai_message_vectors ALTER COLUMN embedding TYPE bytea
    USING pg_temp.float4_bytes(embedding);
ALTER TABLE ai_replies ALTER COLUMN embedding TYPE bytea USING pg_temp.float4_bytes(embedding);
