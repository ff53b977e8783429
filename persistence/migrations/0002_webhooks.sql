-- Webhooks: merchants' endpoints, and the delivery of every outbox event to
-- every endpoint that subscribes to it.
--
-- Fan-out is a trigger on events: the delivery rows commit in the very
-- transaction that records the state change and its event, so no event is
-- ever missed, however a process dies. An endpoint sees only events that
-- commit after it was created.

CREATE TABLE webhook_endpoints (
    id                          text PRIMARY KEY CHECK (id ~ '^we_[a-z2-7]{24}$'),
    merchant_id                 text NOT NULL REFERENCES merchants (id),
    url                         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                 text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    -- Event types, or '*' alone for every type.
    event_types                 text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 64),
    -- The signing secret is kept as is: HMAC needs it, a hash would not do.
    secret                      text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    -- During a rotation the old secret signs too, until it expires.
    previous_secret             text CHECK (previous_secret LIKE 'whsec\_%'),
    previous_secret_expires_at  timestamptz,
    status                      text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
    disabled_at                 timestamptz,
    -- The first failed attempt since the last success; null while healthy.
    failing_since               timestamptz,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL,
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL)),
    CHECK ((status = 'disabled') = (disabled_at IS NOT NULL))
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, created_at DESC, id DESC);

-- webhook_delivery_id makes ids shaped like the application's (NewID):
-- "whd_" and 24 lowercase base32 characters, about 118 random bits.
CREATE FUNCTION webhook_delivery_id() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT 'whd_' || string_agg(substr('abcdefghijklmnopqrstuvwxyz234567', get_byte(r.b, i) % 32 + 1, 1), '' ORDER BY i)
    FROM (SELECT uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()) AS b) r, generate_series(0, 23) AS i
$$;

-- One event to one endpoint. A redelivery is a delivery of its own, with the
-- same event (and so the same webhook-id).
CREATE TABLE webhook_deliveries (
    id                text PRIMARY KEY DEFAULT webhook_delivery_id() CHECK (id ~ '^whd_[a-z2-7]{24}$'),
    endpoint_id       text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id          text NOT NULL REFERENCES events (id),
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts          int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the next attempt is due. A claim moves it to the end of the
    -- claim's lease, so a crashed process's claims come due again.
    next_attempt_at   timestamptz NOT NULL,
    claimed_until     timestamptz,
    claim_token       uuid,
    first_attempt_at  timestamptz,
    last_attempt_at   timestamptz,
    last_status_code  int,
    last_error        text NOT NULL DEFAULT '',
    redelivery        boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    completed_at      timestamptz,
    CHECK ((status = 'pending') = (completed_at IS NULL)),
    CHECK ((claimed_until IS NULL) = (claim_token IS NULL)),
    CHECK (status = 'pending' OR claim_token IS NULL),
    CHECK ((attempts = 0) = (first_attempt_at IS NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_claimed ON webhook_deliveries (endpoint_id) WHERE claim_token IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

-- Every attempt, as the receiver answered it.
CREATE TABLE webhook_attempts (
    id             bigserial PRIMARY KEY,
    delivery_id    text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at   timestamptz NOT NULL,
    status_code    int CHECK (status_code BETWEEN 100 AND 999),
    latency_ms     int NOT NULL CHECK (latency_ms >= 0),
    -- The first KB of the response body.
    response_body  text NOT NULL DEFAULT '' CHECK (octet_length(response_body) <= 1024),
    error          text NOT NULL DEFAULT '',
    succeeded      boolean NOT NULL,
    CHECK (NOT succeeded OR status_code BETWEEN 200 AND 299)
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- webhook_fan_out creates the deliveries of a new event, due at once, and
-- wakes the delivery engines (LISTEN webhook_deliveries) when it commits.
CREATE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, event_id, next_attempt_at, created_at)
    SELECT e.id, NEW.id, NEW.created_at, NEW.created_at
    FROM webhook_endpoints e
    WHERE e.merchant_id = NEW.merchant_id
      AND e.status = 'enabled'
      AND (NEW.type = ANY (e.event_types) OR '*' = ANY (e.event_types));
    IF FOUND THEN
        PERFORM pg_notify('webhook_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_webhook_fan_out AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION webhook_fan_out();
