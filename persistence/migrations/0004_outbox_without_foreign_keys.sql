-- The outbox's foreign keys re-checked, for every event and delivery, what
-- the statement that wrote them had just done: SettleBatch inserts a
-- session's events in the statement that locked the session and inserted
-- the payment they name, and the fan-out inserts a delivery in the
-- statement that inserted its event. Each check is a query, and on a row
-- inserted in the same transaction it also locks that row (a WAL record
-- each). Together they were about a quarter of Postgres's CPU per
-- settlement (BenchmarkSettleBatch at 128 rows, quiet machine: 225-257 µs
-- a row with them, 168-193 without). Merchants, sessions, payments and
-- events are never deleted, so nothing can orphan a row later; the chaos
-- checker (chaos/invariants.go, checkReferences) verifies the references
-- after every scenario.
--
-- Kept: payments.session_id, sessions.merchant_id, and
-- webhook_deliveries.endpoint_id (ON DELETE CASCADE when an endpoint is
-- deleted).
ALTER TABLE events
    DROP CONSTRAINT events_payment_id_fkey,
    DROP CONSTRAINT events_session_id_fkey,
    DROP CONSTRAINT events_merchant_id_fkey;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_id_fkey;
