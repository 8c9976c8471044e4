-- Vacuum the append-mostly tables after every 50,000 new rows rather than after 20% growth
-- (PostgreSQL's default). A vacuum after inserts marks the new pages all-visible; the later it
-- runs, the bigger the table it catches up on, and the likelier those pages were already written
-- out by a checkpoint, so each is logged again as a whole page. On a million-row table that was
-- 100+ MB of WAL in a few seconds, and commits waited behind it. Small, frequent runs keep each
-- one short and mostly within the checkpoint that wrote the pages.
ALTER TABLE messages SET (autovacuum_vacuum_insert_threshold = 50000,
                          autovacuum_vacuum_insert_scale_factor = 0);
ALTER TABLE event_log SET (autovacuum_vacuum_insert_threshold = 50000,
                           autovacuum_vacuum_insert_scale_factor = 0);
ALTER TABLE realtime_events SET (autovacuum_vacuum_insert_threshold = 50000,
                                 autovacuum_vacuum_insert_scale_factor = 0);

-- ANALYZE reads a random sample of 300 x the statistics target rows, from all over the table:
-- on the event journal (millions of rows, read only by conversation through its index) the
-- default target made every auto-analyze read 30,000 pages, most from disk, for 15 s, and commits
-- waited behind those reads. A target of 10 samples 3,000 rows, which is plenty for its queries.
ALTER TABLE event_log ALTER COLUMN id SET STATISTICS 10,
                      ALTER COLUMN account_id SET STATISTICS 10,
                      ALTER COLUMN conversation_id SET STATISTICS 10,
                      ALTER COLUMN type SET STATISTICS 10,
                      ALTER COLUMN occurred_at SET STATISTICS 10,
                      ALTER COLUMN event SET STATISTICS 10;
