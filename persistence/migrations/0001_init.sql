-- The settlement ledger. Postgres is the truth: every invariant that can be
-- stated in SQL is stated here, so that no code path can write around it.

CREATE TABLE merchants (
    id          text PRIMARY KEY CHECK (id LIKE 'mer\_%'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    account     text NOT NULL CHECK (account ~ '^G[A-Z2-7]{55}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           text PRIMARY KEY CHECK (id LIKE 'key\_%'),
    merchant_id  text NOT NULL REFERENCES merchants (id),
    prefix       text NOT NULL,
    hash         bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);
CREATE INDEX merchants_account ON merchants (account);

CREATE TABLE sessions (
    id                 text PRIMARY KEY CHECK (id ~ '^cs_[a-z2-7]{24}$'),
    merchant_id        text NOT NULL REFERENCES merchants (id),
    receiving_account  text NOT NULL CHECK (receiving_account ~ '^G[A-Z2-7]{55}$'),
    memo_type          text NOT NULL CHECK (memo_type IN ('text', 'id', 'muxed')),
    memo               text NOT NULL CHECK (
                           (memo_type = 'text' AND octet_length(memo) BETWEEN 1 AND 28)
                        OR (memo_type IN ('id', 'muxed') AND memo ~ '^[0-9]{1,20}$')),
    amount             bigint NOT NULL CHECK (amount > 0),
    asset_code         text NOT NULL CHECK (asset_code ~ '^[A-Za-z0-9]{1,12}$'),
    asset_issuer       text NOT NULL CHECK (
                           (asset_code = 'XLM' AND asset_issuer = '')
                        OR asset_issuer ~ '^G[A-Z2-7]{55}$'),
    amount_received    bigint NOT NULL DEFAULT 0 CHECK (amount_received >= 0),
    status             text NOT NULL DEFAULT 'open'
                           CHECK (status IN ('open', 'complete', 'expired', 'canceled')),
    payment_status     text NOT NULL DEFAULT 'unpaid'
                           CHECK (payment_status IN ('unpaid', 'partially_paid', 'paid', 'overpaid')),
    expires_at         timestamptz NOT NULL,
    metadata           jsonb NOT NULL DEFAULT '{}',
    success_url        text NOT NULL DEFAULT '',
    cancel_url         text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    closed_at          timestamptz,
    version            bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    -- A memo is never reused on an account, so a late payment finds its own session.
    UNIQUE (receiving_account, memo),
    CHECK ((status = 'open') = (closed_at IS NULL)),
    CHECK (status <> 'complete' OR amount_received >= amount),
    CHECK ((payment_status = 'unpaid') = (amount_received = 0)),
    CHECK (payment_status <> 'partially_paid' OR amount_received < amount),
    CHECK (payment_status <> 'paid' OR amount_received = amount),
    CHECK (payment_status <> 'overpaid' OR amount_received > amount)
);
CREATE INDEX sessions_merchant_created ON sessions (merchant_id, created_at DESC, id DESC);
CREATE INDEX sessions_open_expiry ON sessions (expires_at) WHERE status = 'open';

CREATE TABLE payments (
    id                text PRIMARY KEY CHECK (id LIKE 'pay\_%'),
    operation_id      text NOT NULL UNIQUE CHECK (operation_id ~ '^[0-9]{1,20}$'),
    transaction_hash  text NOT NULL,
    operation_type    text NOT NULL,
    from_account      text NOT NULL,
    to_account        text NOT NULL,
    to_muxed_id       text NOT NULL DEFAULT '',
    amount            bigint NOT NULL CHECK (amount >= 0),
    asset_code        text NOT NULL,
    asset_issuer      text NOT NULL,
    memo_type         text NOT NULL DEFAULT '',
    memo              text NOT NULL DEFAULT '',
    ledger_closed_at  timestamptz NOT NULL,
    session_id        text REFERENCES sessions (id),
    disposition       text NOT NULL
                          CHECK (disposition IN ('applied', 'late', 'wrong_asset', 'unmatched')),
    created_at        timestamptz NOT NULL,
    CHECK ((disposition = 'unmatched') = (session_id IS NULL))
);
CREATE INDEX payments_session ON payments (session_id, created_at);

-- The outbox: an event commits or rolls back with the state change it records.
CREATE TABLE events (
    seq          bigserial UNIQUE,
    id           text PRIMARY KEY CHECK (id LIKE 'evt\_%'),
    type         text NOT NULL,
    merchant_id  text NOT NULL REFERENCES merchants (id),
    session_id   text REFERENCES sessions (id),
    payment_id   text REFERENCES payments (id),
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX events_merchant_seq ON events (merchant_id, seq DESC);
CREATE INDEX events_session ON events (session_id);
-- One transition emits each of its event types once.
CREATE UNIQUE INDEX events_one_completion ON events (session_id)
    WHERE type = 'checkout.session.completed';
CREATE UNIQUE INDEX events_one_expiry ON events (session_id)
    WHERE type = 'checkout.session.expired';
CREATE UNIQUE INDEX events_one_cancel ON events (session_id)
    WHERE type = 'checkout.session.canceled';
CREATE UNIQUE INDEX events_one_per_payment ON events (payment_id, type, merchant_id)
    WHERE payment_id IS NOT NULL;

-- Where each receiving account's watcher resumes, and how far in ledger time
-- it has seen everything.
CREATE TABLE ledger_cursors (
    account         text PRIMARY KEY CHECK (account ~ '^G[A-Z2-7]{55}$'),
    cursor          text NOT NULL CHECK (cursor ~ '^[0-9]{1,20}$'),
    caught_up_to    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE idempotency_keys (
    merchant_id      text NOT NULL REFERENCES merchants (id),
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash     bytea NOT NULL,
    response_status  int,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
