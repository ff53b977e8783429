-- events.seq orders a merchant's events (events_merchant_seq) and a
-- session's. It comes from its own sequence, which never hands out a
-- number twice, so its UNIQUE index checked nothing a reader relies on
-- while costing an index entry for every event.
ALTER TABLE events DROP CONSTRAINT events_seq_key;
