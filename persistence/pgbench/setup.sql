-- The data the pgbench scripts work on, in a database that checkoutd's
-- migrations have prepared (run.sh runs `checkoutd migrate` first):
--   - one merchant, mer_pgbench, with one API key (for create1*.sql);
--   - one enabled webhook endpoint subscribed to every event type, so that
--     the fan-out trigger on events writes one delivery per event, as it
--     does in production;
--   - 10,000 open sessions of a million XLM, text memos, so that a
--     one-stroop payment never completes one: every settlement is
--     partially_paid with one payment.received event, as in
--     BenchmarkSettleBatch (persistence/batch_bench_test.go).
--   - a history: one earlier payment to each session, with its event (and
--     so its webhook delivery), and 10,000 stored idempotent responses.
--     Tables that VACUUM ANALYZE finds empty are planned as empty: the
--     foreign-key checks of the first script would then scan payments and
--     events whole, and their cached plans would stay so for the run.
-- Session n (1..10,000) has the id sid(n) below, so that a script can name
-- a session from a number that \set draws.

CREATE FUNCTION pgbench_sid(n bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'cs_' || translate(lpad(n::text, 24, '0'), '0123456789', 'abcdefghij')
$$;

INSERT INTO merchants (id, name, account, created_at)
VALUES ('mer_pgbench', 'pgbench shop', :'account', now());

-- The key's secret is sk_pgbench; AuthenticateAPIKey looks it up by its
-- SHA-256 (persistence.HashAPIKey).
INSERT INTO api_keys (id, merchant_id, prefix, hash, created_at)
VALUES ('key_pgbench', 'mer_pgbench', 'sk_pgbench', sha256('sk_pgbench'), now());

INSERT INTO webhook_endpoints (id, merchant_id, url, event_types, secret, created_at, updated_at)
VALUES ('we_' || repeat('a', 24), 'mer_pgbench', 'https://example.invalid/hook', '{*}',
        'whsec_' || repeat('A', 32), now(), now());

INSERT INTO sessions (id, merchant_id, receiving_account, memo_type, memo, amount,
    asset_code, asset_issuer, amount_received, status, payment_status, expires_at,
    metadata, success_url, cancel_url, created_at, updated_at, closed_at, version)
SELECT pgbench_sid(n), 'mer_pgbench', :'account', 'text', 'M' || n, 10000000000000,
    'XLM', '', 0, 'open', 'unpaid', now() + interval '1 day',
    '{}', '', '', now(), now(), NULL, 1
FROM generate_series(1, 10000) AS n;

INSERT INTO payments (id, operation_id, transaction_hash, operation_type, from_account,
    to_account, to_muxed_id, amount, asset_code, asset_issuer, memo_type, memo,
    ledger_closed_at, session_id, disposition, created_at)
SELECT 'pay_h' || n, n::text, repeat('0', 64), 'payment', :'account', :'account', '', 1, 'XLM', '',
    'text', 'M' || n, now() - interval '1 hour', pgbench_sid(n), 'applied', now() - interval '1 hour'
FROM generate_series(1, 10000) AS n;

INSERT INTO events (id, type, merchant_id, session_id, payment_id, payload, created_at)
SELECT 'evt_h' || n, 'payment.received', 'mer_pgbench', pgbench_sid(n), 'pay_h' || n, :'payload',
    now() - interval '1 hour'
FROM generate_series(1, 10000) AS n;

INSERT INTO idempotency_keys (merchant_id, key, request_hash, response_status, response_body, created_at)
SELECT 'mer_pgbench', 'history-' || n, sha256('history'), 201, convert_to(:'payload', 'UTF8'),
    now() - interval '1 hour'
FROM generate_series(1, 10000) AS n;

VACUUM ANALYZE;
