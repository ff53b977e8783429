-- webhook_deliveries is a queue: every delivery is inserted, claimed and
-- completed, and completing it (a change of status, which the due index's
-- predicate reads) leaves a dead entry in webhook_deliveries_due. The claim
-- reads that index in next_attempt_at order, so it walks every entry left
-- since the last vacuum before it reaches a due delivery. Under the
-- default thresholds a table is vacuumed once a fifth of it is dead, so
-- the walk grows with the table. A fixed threshold keeps each walk short
-- however large the table grows. How often autovacuum looks is the
-- server's autovacuum_naptime, 1 min by default (docs/operations.md): in
-- a 60 s run at 300 sessions/s on a fresh database the claim took 14 ms a
-- call with the defaults, and 1.7-2.3 ms with this and a 5 s naptime
-- (docs/benchmarks.md, "Vacuum and the webhook queue").
ALTER TABLE webhook_deliveries SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000
);
