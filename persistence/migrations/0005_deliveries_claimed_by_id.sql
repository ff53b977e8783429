-- Claims are found again by delivery id, not through an index of claimed
-- rows. Every claim added an entry to webhook_deliveries_claimed and every
-- completion left one dead there until the next vacuum; the planner, which
-- believed the index held a handful of rows, read it for each batch of
-- recorded successes, so that statement grew with the dead entries (2.3 to
-- 4.6 ms a call over a minute at 200 sessions/s). Its one other reader,
-- releasing a stopping engine's claims, now names the deliveries.
DROP INDEX webhook_deliveries_claimed;
