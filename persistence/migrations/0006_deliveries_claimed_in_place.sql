-- A claim no longer moves a delivery's next_attempt_at to the end of its
-- lease: it sets claimed_until and the token, and a delivery is due when
-- next_attempt_at has come and no live claim holds it. With no indexed
-- column changed, the claim is a HOT update, which writes no index entry
-- and leaves no dead one in webhook_deliveries_due. A HOT update needs room
-- on the row's own page: rows are inserted, claimed, then completed, so
-- new pages keep a fifth of their space free for those versions.
ALTER TABLE webhook_deliveries SET (fillfactor = 80);
