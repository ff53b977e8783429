-- (b) One settlement as the journal sends it today: SettleBatch with one row
-- sends settlePaymentSQL (persistence/batch.go) alone, in an implicit
-- transaction. The statement is batch.go's text with its parameters
-- replaced (gen.sh); $6 (closed_at) is NULL, which a pgbench variable cannot be.
\set op random(1000000, 4611686018427387903)
\set i0 1 + :client_id + :nclients * ((:n + 0) % (10000 / :nclients))
\set v0 1 + (:n + 0) / (10000 / :nclients)
\set w0 :v0 + 1
\set o0 :op + 0
\set n :n + 1
WITH v AS (
	SELECT id FROM sessions WHERE id = pgbench_sid(:i0) AND version = :v0 FOR UPDATE
), p AS (
	INSERT INTO payments (id, operation_id, transaction_hash, operation_type, from_account,
		to_account, to_muxed_id, amount, asset_code, asset_issuer, memo_type, memo,
		ledger_closed_at, session_id, disposition, created_at)
	SELECT ('pay_' || :o0)::text, (:o0)::text::text, :txhash::text, 'payment'::text, :from::text, :account::text, ''::text, 1::bigint,
		'XLM'::text, ''::text, 'text'::text, ('M' || :i0)::text, now()::timestamptz, pgbench_sid(:i0)::text, 'applied'::text, now()::timestamptz
	FROM v
	ON CONFLICT (operation_id) DO NOTHING
	RETURNING 1
), s AS (
	UPDATE sessions SET amount_received = :v0, status = 'open', payment_status = 'partially_paid',
		closed_at = NULL, updated_at = now(), version = :w0
	WHERE id = pgbench_sid(:i0) AND version = :v0 AND EXISTS (SELECT 1 FROM p)
	RETURNING 1
), e AS (
	INSERT INTO events (id, type, merchant_id, session_id, payment_id, payload, created_at)
	SELECT id, type, merchant_id, nullif(session_id, ''), nullif(payment_id, ''), payload::jsonb, created_at
	FROM unnest(ARRAY['evt_' || :o0]::text[], ARRAY['payment.received']::text[], ARRAY['mer_pgbench']::text[], ARRAY[pgbench_sid(:i0)]::text[], ARRAY['pay_' || :o0]::text[], :payload1::text[], ARRAY[now()]::timestamptz[])
		AS e(id, type, merchant_id, session_id, payment_id, payload, created_at)
	WHERE EXISTS (SELECT 1 FROM s)
)
SELECT EXISTS (SELECT 1 FROM v), EXISTS (SELECT 1 FROM p),
	EXISTS (SELECT 1 FROM payments WHERE operation_id = (:o0)::text);
