-- Fan events out to webhook deliveries once per statement instead of once
-- per row: SettleBatch inserts a whole batch's events in one statement, and
-- a row trigger ran a PL/pgSQL call and a query per event.
DROP TRIGGER events_webhook_fan_out ON events;
DROP FUNCTION webhook_fan_out();

CREATE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, event_id, next_attempt_at, created_at)
    SELECT e.id, n.id, n.created_at, n.created_at
    FROM new_events n
    JOIN webhook_endpoints e ON e.merchant_id = n.merchant_id
    WHERE e.status = 'enabled'
      AND (n.type = ANY (e.event_types) OR '*' = ANY (e.event_types))
    ORDER BY n.seq, e.id;
    IF FOUND THEN
        PERFORM pg_notify('webhook_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_webhook_fan_out AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_fan_out();
