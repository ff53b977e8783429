package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/webhooks"
)

// WebhookEndpoint is a merchant's webhook endpoint as stored.
type WebhookEndpoint struct {
	ID          string
	MerchantID  string
	URL         string
	Description string
	// EventTypes is the filter: event types, or "*" alone.
	EventTypes []string
	Secret     webhooks.Secret
	// PreviousSecret signs too until PreviousSecretExpiresAt, after a
	// rotation; empty otherwise.
	PreviousSecret          webhooks.Secret
	PreviousSecretExpiresAt time.Time
	// Status is "enabled" or "disabled".
	Status     string
	DisabledAt time.Time
	// FailingSince is the first failed attempt since the last success; zero
	// while the endpoint is healthy.
	FailingSince time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Endpoint statuses.
const (
	EndpointEnabled  = "enabled"
	EndpointDisabled = "disabled"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// SigningSecrets returns the secrets that sign a message at now: the current
// one, and the previous one while its rotation overlap lasts.
func (e WebhookEndpoint) SigningSecrets(now time.Time) []webhooks.Secret {
	if e.PreviousSecret != "" && now.Before(e.PreviousSecretExpiresAt) {
		return []webhooks.Secret{e.Secret, e.PreviousSecret}
	}
	return []webhooks.Secret{e.Secret}
}

// WebhookDelivery is one event's delivery to one endpoint.
type WebhookDelivery struct {
	ID         string
	EndpointID string
	EventID    string
	EventType  checkout.EventType
	// Status is pending, succeeded or failed.
	Status         string
	Attempts       int
	NextAttemptAt  time.Time // meaningful while pending
	FirstAttemptAt time.Time
	LastAttemptAt  time.Time
	// LastStatusCode is 0 when the last attempt got no response.
	LastStatusCode int
	LastError      string
	Redelivery     bool
	CreatedAt      time.Time
	CompletedAt    time.Time
}

// WebhookAttempt is one HTTP attempt of a delivery.
type WebhookAttempt struct {
	DeliveryID  string
	AttemptedAt time.Time
	// StatusCode is 0 when no response came (timeout, refused, ...).
	StatusCode int
	Latency    time.Duration
	// ResponseBody is at most the first MaxResponseBody bytes of the
	// response, as valid UTF-8.
	ResponseBody string
	Error        string
	Succeeded    bool
}

// MaxResponseBody is how much of a receiver's response body is kept.
const MaxResponseBody = 1024

// OutboxEvent is an event as the delivery engine renders it.
type OutboxEvent struct {
	checkout.Event
	// Endpoint is the endpoint a webhook_endpoint.disabled event is about.
	Endpoint *WebhookEndpoint
}

// endpointSnapshot is what a webhook_endpoint.disabled event keeps of its
// endpoint in the outbox payload. No secret.
type endpointSnapshot struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Description string    `json:"description"`
	EventTypes  []string  `json:"events"`
	Status      string    `json:"status"`
	DisabledAt  time.Time `json:"disabled_at"`
	CreatedAt   time.Time `json:"created_at"`
}

type endpointPayload struct {
	WebhookEndpoint *endpointSnapshot `json:"webhook_endpoint,omitempty"`
}

const endpointColumns = `id, merchant_id, url, description, event_types, secret,
	coalesce(previous_secret, ''), previous_secret_expires_at, status, disabled_at, failing_since,
	created_at, updated_at`

func scanEndpoint(row pgx.Row) (WebhookEndpoint, error) {
	var (
		e                          WebhookEndpoint
		secret, prev               string
		prevExp, disabled, failing *time.Time
	)
	err := row.Scan(&e.ID, &e.MerchantID, &e.URL, &e.Description, &e.EventTypes, &secret, &prev,
		&prevExp, &e.Status, &disabled, &failing, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return WebhookEndpoint{}, interpretError(err)
	}
	e.Secret, e.PreviousSecret = webhooks.Secret(secret), webhooks.Secret(prev)
	e.PreviousSecretExpiresAt, e.DisabledAt, e.FailingSince = deref(prevExp), deref(disabled), deref(failing)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return e, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// CreateWebhookEndpoint stores a new endpoint. It receives the events that
// commit from now on.
func (db *DB) CreateWebhookEndpoint(ctx context.Context, e WebhookEndpoint) error {
	if e.Status == "" {
		e.Status = EndpointEnabled
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, merchant_id, url, description,
		event_types, secret, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
		e.ID, e.MerchantID, e.URL, e.Description, e.EventTypes, e.Secret.Reveal(), e.Status, e.CreatedAt)
	if err != nil {
		return fmt.Errorf("create webhook endpoint %s: %w", e.ID, interpretError(err))
	}
	return nil
}

// GetWebhookEndpoint loads one of a merchant's endpoints. Another merchant's
// endpoint is checkout.ErrNotFound.
func (db *DB) GetWebhookEndpoint(ctx context.Context, merchantID, id string) (WebhookEndpoint, error) {
	e, err := scanEndpoint(db.pool.QueryRow(ctx, `SELECT `+endpointColumns+`
		FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2`, id, merchantID))
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("get webhook endpoint %s: %w", id, err)
	}
	return e, nil
}

// ListWebhookEndpoints returns a page of a merchant's endpoints, newest
// first, paged like ListSessions. Filter is an endpoint status.
func (db *DB) ListWebhookEndpoints(ctx context.Context, p ListParams) ([]WebhookEndpoint, bool, error) {
	return listByCreated(ctx, db, p, "webhook endpoints", `webhook_endpoints`, endpointColumns,
		`merchant_id = $1 AND ($2 = '' OR status = $2)`, []any{p.MerchantID, p.Filter},
		`SELECT created_at FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2`, scanEndpoint)
}

// listByCreated pages through rows ordered by (created_at, id) descending.
// cursorQuery takes the cursor id and p.MerchantID and returns the cursor's
// created_at.
func listByCreated[T any](ctx context.Context, db *DB, p ListParams, what, from, columns, where string,
	args []any, cursorQuery string, scan func(pgx.Row) (T, error)) ([]T, bool, error) {
	if err := p.check(); err != nil {
		return nil, false, err
	}
	order := `created_at DESC, id DESC`
	cursorID, param, after := p.StartingAfter, "starting_after", true
	if p.EndingBefore != "" {
		cursorID, param, after = p.EndingBefore, "ending_before", false
	}
	if cursorID != "" {
		var createdAt time.Time
		if err := db.pool.QueryRow(ctx, cursorQuery, cursorID, p.MerchantID).Scan(&createdAt); err != nil {
			if interpretError(err) == checkout.ErrNotFound {
				return nil, false, cursorMissing(param, cursorID)
			}
			return nil, false, fmt.Errorf("list %s: %w", what, interpretError(err))
		}
		args = append(args, createdAt, cursorID)
		n := len(args)
		if after {
			where += fmt.Sprintf(` AND (created_at, id) < ($%d, $%d)`, n-1, n)
		} else {
			where += fmt.Sprintf(` AND (created_at, id) > ($%d, $%d)`, n-1, n)
			order = `created_at ASC, id ASC`
		}
	}
	args = append(args, p.Limit+1)
	rows, err := db.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT $%d`,
		columns, from, where, order, len(args)), args...)
	if err != nil {
		return nil, false, fmt.Errorf("list %s: %w", what, interpretError(err))
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		item, err := scan(rows)
		if err != nil {
			return nil, false, fmt.Errorf("list %s: %w", what, err)
		}
		out = append(out, item)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list %s: %w", what, interpretError(err))
	}
	return page(out, p.Limit, after)
}

// DeleteWebhookEndpoint deletes one of a merchant's endpoints with its
// deliveries and their attempts. Attempts in flight finish, and their
// results are dropped.
func (db *DB) DeleteWebhookEndpoint(ctx context.Context, merchantID, id string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2`, id, merchantID)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, interpretError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, checkout.ErrNotFound)
	}
	return nil
}

// RotateWebhookSecret gives an endpoint a new secret. The current one keeps
// signing beside it until now+overlap; a secret that was still overlapping
// from an earlier rotation stops signing at once.
func (db *DB) RotateWebhookSecret(ctx context.Context, merchantID, id string, secret webhooks.Secret, now time.Time, overlap time.Duration) (WebhookEndpoint, error) {
	e, err := scanEndpoint(db.pool.QueryRow(ctx, `UPDATE webhook_endpoints
		SET previous_secret = secret, previous_secret_expires_at = $3, secret = $4, updated_at = $5
		WHERE id = $1 AND merchant_id = $2 RETURNING `+endpointColumns,
		id, merchantID, now.Add(overlap), secret.Reveal(), now))
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("rotate webhook secret of %s: %w", id, err)
	}
	return e, nil
}

// deliveriesFrom is the deliveries with their event's type, as d.
const deliveriesFrom = `(SELECT w.*, ev.type AS event_type FROM webhook_deliveries w
	JOIN events ev ON ev.id = w.event_id) d`

const deliveryColumns = `d.id, d.endpoint_id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at,
	d.first_attempt_at, d.last_attempt_at, coalesce(d.last_status_code, 0), d.last_error, d.redelivery,
	d.created_at, d.completed_at`

func scanDelivery(row pgx.Row) (WebhookDelivery, error) {
	var (
		d                      WebhookDelivery
		first, last, completed *time.Time
	)
	err := row.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &d.NextAttemptAt,
		&first, &last, &d.LastStatusCode, &d.LastError, &d.Redelivery, &d.CreatedAt, &completed)
	if err != nil {
		return WebhookDelivery{}, interpretError(err)
	}
	d.FirstAttemptAt, d.LastAttemptAt, d.CompletedAt = deref(first), deref(last), deref(completed)
	d.NextAttemptAt, d.CreatedAt = d.NextAttemptAt.UTC(), d.CreatedAt.UTC()
	return d, nil
}

// ListWebhookDeliveries returns a page of an endpoint's deliveries, newest
// first, paged like ListSessions. p.Filter is a delivery status. An endpoint
// of another merchant is checkout.ErrNotFound.
func (db *DB) ListWebhookDeliveries(ctx context.Context, endpointID string, p ListParams) ([]WebhookDelivery, bool, error) {
	if _, err := db.GetWebhookEndpoint(ctx, p.MerchantID, endpointID); err != nil {
		return nil, false, err
	}
	return listByCreated(ctx, db, p, "webhook deliveries",
		deliveriesFrom, deliveryColumns,
		`d.endpoint_id = $3 AND ($2 = '' OR d.status = $2) AND $1 <> ''`, []any{p.MerchantID, p.Filter, endpointID},
		`SELECT d.created_at FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
			WHERE d.id = $1 AND e.merchant_id = $2`, scanDelivery)
}

// WebhookDeliveriesOfEvent returns every delivery of an event, oldest first.
func (db *DB) WebhookDeliveriesOfEvent(ctx context.Context, eventID string) ([]WebhookDelivery, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM `+deliveriesFrom+`
		WHERE d.event_id = $1 ORDER BY d.created_at, d.id`, eventID)
	if err != nil {
		return nil, fmt.Errorf("deliveries of event %s: %w", eventID, interpretError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (WebhookDelivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("deliveries of event %s: %w", eventID, interpretError(err))
	}
	return out, nil
}

// WebhookAttempts returns a delivery's attempts, oldest first.
func (db *DB) WebhookAttempts(ctx context.Context, deliveryID string) ([]WebhookAttempt, error) {
	rows, err := db.pool.Query(ctx, `SELECT delivery_id, attempted_at, coalesce(status_code, 0), latency_ms,
		response_body, error, succeeded FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("attempts of delivery %s: %w", deliveryID, interpretError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (WebhookAttempt, error) {
		var (
			a  WebhookAttempt
			ms int64
		)
		err := r.Scan(&a.DeliveryID, &a.AttemptedAt, &a.StatusCode, &ms, &a.ResponseBody, &a.Error, &a.Succeeded)
		a.Latency, a.AttemptedAt = time.Duration(ms)*time.Millisecond, a.AttemptedAt.UTC()
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("attempts of delivery %s: %w", deliveryID, interpretError(err))
	}
	return out, nil
}

// ErrEndpointDisabled is returned for a redelivery to a disabled endpoint.
var ErrEndpointDisabled = &checkout.Error{Code: checkout.ECONFLICT, Reason: "endpoint_disabled",
	Message: "the webhook endpoint is disabled", Param: "endpoint_id"}

// RedeliverEvent creates new deliveries of one of a merchant's events, due
// at now: to endpointID, whatever its filter, or, when endpointID is empty,
// to every enabled endpoint whose filter matches the event. They carry the
// event's id, so receivers see the same webhook-id. An event or endpoint of
// another merchant is checkout.ErrNotFound; a disabled endpoint is
// ErrEndpointDisabled.
func (db *DB) RedeliverEvent(ctx context.Context, merchantID, eventID, endpointID string, now time.Time) ([]WebhookDelivery, error) {
	var out []WebhookDelivery
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM events WHERE id = $1 AND merchant_id = $2`,
			eventID, merchantID).Scan(&one); err != nil {
			return interpretError(err)
		}
		if endpointID != "" {
			var status string
			if err := tx.QueryRow(ctx, `SELECT status FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2`,
				endpointID, merchantID).Scan(&status); err != nil {
				return interpretError(err)
			}
			if status != EndpointEnabled {
				return ErrEndpointDisabled
			}
		}
		rows, err := tx.Query(ctx, `WITH ins AS (
				INSERT INTO webhook_deliveries (endpoint_id, event_id, next_attempt_at, created_at, redelivery)
				SELECT e.id, ev.id, $4, $4, true
				FROM webhook_endpoints e JOIN events ev ON ev.id = $2 AND ev.merchant_id = e.merchant_id
				WHERE e.merchant_id = $1 AND e.status = 'enabled'
				  AND (e.id = $3 OR ($3 = '' AND (ev.type = ANY (e.event_types) OR '*' = ANY (e.event_types))))
				RETURNING *)
			SELECT `+deliveryColumns+` FROM (SELECT ins.*, ev.type AS event_type
				FROM ins JOIN events ev ON ev.id = ins.event_id) d ORDER BY d.endpoint_id`,
			merchantID, eventID, endpointID, now)
		if err != nil {
			return interpretError(err)
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (WebhookDelivery, error) { return scanDelivery(r) })
		if err != nil {
			return interpretError(err)
		}
		if len(out) > 0 {
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, DeliveriesChannel)
		}
		return interpretError(err)
	})
	if err != nil {
		return nil, fmt.Errorf("redeliver event %s: %w", eventID, err)
	}
	if out == nil {
		out = []WebhookDelivery{}
	}
	return out, nil
}

// DeliveriesChannel is the channel Postgres notifies when deliveries become
// due: when an event fans out, and on a redelivery.
const DeliveriesChannel = "webhook_deliveries"

// ClaimParams says what a delivery engine can take on.
type ClaimParams struct {
	Now time.Time
	// Lease is how long the claim is exclusive. A claim whose attempt has
	// not been recorded by then comes due again, for any engine: the
	// at-least-once half of the bargain.
	Lease time.Duration
	// Limit is how many deliveries to claim at most.
	Limit int
	// PerEndpoint is how many deliveries of one endpoint the engine may
	// hold at once, counting InFlight.
	PerEndpoint int
	// InFlight is how many deliveries of each endpoint the engine already
	// holds.
	InFlight map[string]int
}

// ClaimedDelivery is a delivery claimed for one attempt, with everything
// needed to make it.
type ClaimedDelivery struct {
	ID string
	// ClaimToken fences the claim: the attempt is recorded against the
	// delivery only while the token is still its claim's.
	ClaimToken string
	// ClaimedUntil is when the claim's lease ends: after it, any engine may
	// claim the delivery again, so an attempt must not start unless it can
	// end before then.
	ClaimedUntil time.Time
	// Attempts is how many attempts were made before this one.
	Attempts int
	// FirstAttemptAt is zero for a first attempt.
	FirstAttemptAt time.Time
	Endpoint       WebhookEndpoint
	Event          OutboxEvent
}

// ClaimDeliveries claims due deliveries, oldest due first, with FOR UPDATE
// SKIP LOCKED so that concurrent engines never claim the same one, and so
// that the engine holds at most PerEndpoint of one endpoint at once. The
// limit is each engine's: n engines may have n × PerEndpoint attempts in
// flight to one endpoint.
func (db *DB) ClaimDeliveries(ctx context.Context, p ClaimParams) ([]ClaimedDelivery, error) {
	if p.Limit <= 0 || p.PerEndpoint <= 0 || p.Lease <= 0 {
		return nil, errors.New("claim deliveries: limit, per-endpoint limit and lease must be positive")
	}
	until := p.Now.Add(p.Lease)
	// Candidates are picked without locks, at most PerEndpoint per endpoint
	// counting those in flight; only those are then locked, skipping any
	// that another engine holds, and re-checked (a row claimed meanwhile no
	// longer qualifies once its new version is read).
	//
	// The re-check says "completed_at IS NULL" where it means "pending"
	// (the table's CHECK makes them the same) so that it cannot be served
	// by webhook_deliveries_due: with "status = 'pending'" the planner,
	// expecting one due row, re-scanned that index once per candidate, a
	// cost that grew with the square of the backlog (17 ms for 58 rows).
	// Looked up by primary key, a candidate costs one probe.
	//
	// A claim changes no indexed column (it sets claimed_until and the
	// token, not next_attempt_at), so Postgres makes it a HOT update: no
	// index entries, and no dead one left in the due index for every later
	// claim to step over. The due scan passes over the deliveries in
	// flight instead, at most MaxInFlight per engine.
	// Empty, not nil: pgx sends a nil slice as NULL, and "<> ALL (NULL)"
	// is never true.
	full, partly, partlyN := []string{}, []string{}, []int32{}
	for id, n := range p.InFlight {
		switch {
		case n >= p.PerEndpoint:
			full = append(full, id)
		case n > 0:
			partly, partlyN = append(partly, id), append(partlyN, int32(n))
		}
	}
	rows, err := db.pool.Query(ctx, `WITH due AS (
			SELECT d.id, d.endpoint_id, d.next_attempt_at FROM webhook_deliveries d
			WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND d.endpoint_id <> ALL ($5::text[])
				AND (d.claimed_until IS NULL OR d.claimed_until <= $1)
			ORDER BY d.next_attempt_at
			LIMIT $3 * 4
		), picked AS (
			SELECT r.id FROM (
				SELECT due.*, row_number() OVER (PARTITION BY due.endpoint_id ORDER BY due.next_attempt_at, due.id) AS rn
				FROM due) r
			LEFT JOIN unnest($6::text[], $7::int[]) AS b(endpoint_id, n) ON b.endpoint_id = r.endpoint_id
			WHERE r.rn <= $4 - coalesce(b.n, 0)
			ORDER BY r.next_attempt_at
			LIMIT $3
		), locked AS (
			SELECT w.id FROM picked JOIN webhook_deliveries w ON w.id = picked.id
			WHERE w.completed_at IS NULL AND w.next_attempt_at <= $1
				AND (w.claimed_until IS NULL OR w.claimed_until <= $1)
			FOR UPDATE OF w SKIP LOCKED
		)
		UPDATE webhook_deliveries d
		SET claimed_until = $2, claim_token = gen_random_uuid()
		FROM locked, webhook_endpoints e, events ev
		WHERE d.id = locked.id AND e.id = d.endpoint_id AND ev.id = d.event_id
		RETURNING d.id, d.claim_token::text, d.attempts, d.first_attempt_at,
			e.id, e.merchant_id, e.url, e.secret, coalesce(e.previous_secret, ''), e.previous_secret_expires_at,
			ev.id, ev.type, ev.merchant_id, coalesce(ev.session_id, ''), coalesce(ev.payment_id, ''),
			ev.payload, ev.created_at`,
		p.Now, until, p.Limit, p.PerEndpoint, full, partly, partlyN)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", interpretError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ClaimedDelivery, error) {
		var (
			c              ClaimedDelivery
			first, prevExp *time.Time
			secret, prev   string
			payload        []byte
		)
		if err := r.Scan(&c.ID, &c.ClaimToken, &c.Attempts, &first,
			&c.Endpoint.ID, &c.Endpoint.MerchantID, &c.Endpoint.URL, &secret, &prev, &prevExp,
			&c.Event.ID, &c.Event.Type, &c.Event.MerchantID, &c.Event.SessionID, &c.Event.PaymentID,
			&payload, &c.Event.CreatedAt); err != nil {
			return c, err
		}
		c.ClaimedUntil = until
		c.FirstAttemptAt, c.Endpoint.PreviousSecretExpiresAt = deref(first), deref(prevExp)
		c.Endpoint.Secret, c.Endpoint.PreviousSecret = webhooks.Secret(secret), webhooks.Secret(prev)
		c.Event.CreatedAt = c.Event.CreatedAt.UTC()
		return c, decodeOutboxPayload(&c.Event, payload)
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", interpretError(err))
	}
	return out, nil
}

func decodeOutboxPayload(e *OutboxEvent, payload []byte) error {
	var body struct {
		eventPayload
		endpointPayload
	}
	if err := json.Unmarshal(payload, &body); err != nil {
		return fmt.Errorf("event %s payload: %w", e.ID, err)
	}
	e.Session, e.Payment = body.Session, body.Payment
	if s := body.WebhookEndpoint; s != nil {
		e.Endpoint = &WebhookEndpoint{ID: s.ID, MerchantID: e.MerchantID, URL: s.URL, Description: s.Description,
			EventTypes: s.EventTypes, Status: s.Status, DisabledAt: s.DisabledAt.UTC(), CreatedAt: s.CreatedAt.UTC()}
	}
	return nil
}

// ClaimRef names a claim: the delivery, and the token of its claim.
type ClaimRef struct {
	DeliveryID string
	Token      string
}

// ReleaseClaims gives back claims that were never attempted, so that
// another engine takes them at once instead of after their lease: a claim
// leaves a delivery's due time as it was, so a released delivery is due
// again where it stood. A stopping engine calls it for the claims it did
// not get to: flushing the outbox claims. A claim that has lapsed and been
// taken again is left to its new holder.
func (db *DB) ReleaseClaims(ctx context.Context, claims []ClaimRef) (int64, error) {
	if len(claims) == 0 {
		return 0, nil
	}
	ids, tokens := make([]string, len(claims)), make([]string, len(claims))
	for i, c := range claims {
		ids[i], tokens[i] = c.DeliveryID, c.Token
	}
	tag, err := db.pool.Exec(ctx, `UPDATE webhook_deliveries d
		SET claim_token = NULL, claimed_until = NULL
		FROM unnest($1::text[], $2::uuid[]) AS c(id, token)
		WHERE d.id = c.id AND d.claim_token = c.token AND d.completed_at IS NULL`, ids, tokens)
	if err != nil {
		return 0, fmt.Errorf("release delivery claims: %w", interpretError(err))
	}
	return tag.RowsAffected(), nil
}

// AttemptResult is the outcome of one attempt, to record.
type AttemptResult struct {
	Delivery ClaimedDelivery
	Attempt  WebhookAttempt
	// NextAttemptAt is when to try again after a failure; zero to give the
	// delivery up as failed. Ignored on success.
	NextAttemptAt time.Time
	// DisableAfter disables the endpoint when this failure makes it fail
	// continuously for at least this long. Zero never disables.
	DisableAfter time.Duration
}

// AttemptOutcome says what recording an attempt changed.
type AttemptOutcome struct {
	// Stale is true when the claim had lapsed and been taken over, or the
	// delivery is gone: the attempt was recorded, the delivery left alone.
	Stale bool
	// Status is the delivery's status afterwards.
	Status string
	// Disabled is true when this failure disabled the endpoint, and
	// DisabledEventID the webhook_endpoint.disabled event recorded for it.
	Disabled        bool
	DisabledEventID string
}

// RecordAttempt records an attempt and its consequences in one transaction:
// the attempt row; the delivery succeeded, scheduled again or failed (only
// while the claim is still this attempt's); the endpoint's failing streak;
// and, when the streak reaches DisableAfter, the endpoint disabled, its
// pending deliveries failed and a webhook_endpoint.disabled event recorded.
func (db *DB) RecordAttempt(ctx context.Context, r AttemptResult) (AttemptOutcome, error) {
	if r.Attempt.Succeeded {
		return db.recordSuccess(ctx, r.Delivery, r.Attempt)
	}
	var out AttemptOutcome
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		out, err = recordFailed(ctx, tx, r)
		return err
	})
	if err != nil {
		return AttemptOutcome{}, fmt.Errorf("record attempt of delivery %s: %w", r.Delivery.ID, err)
	}
	return out, nil
}

// RecordFailures records failed attempts as RecordAttempt does, all in one
// transaction (one commit), each in a savepoint of its own: errs[i] is the
// error of rs[i] alone, and the others are recorded whatever it was. err
// is set, and nothing recorded, when the transaction itself failed.
func (db *DB) RecordFailures(ctx context.Context, rs []AttemptResult) (outs []AttemptOutcome, errs []error, err error) {
	for _, r := range rs {
		if r.Attempt.Succeeded {
			return nil, nil, fmt.Errorf("record failures: delivery %s succeeded", r.Delivery.ID)
		}
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		outs, errs = make([]AttemptOutcome, len(rs)), make([]error, len(rs))
		for i, r := range rs {
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				var err error
				outs[i], err = recordFailed(ctx, sp, r)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				outs[i], errs[i] = AttemptOutcome{}, fmt.Errorf("record attempt of delivery %s: %w", r.Delivery.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("record failures: %w", interpretError(err))
	}
	return outs, errs, nil
}

// recordFailed records one failed attempt in tx.
func recordFailed(ctx context.Context, tx pgx.Tx, r AttemptResult) (AttemptOutcome, error) {
	a, d := r.Attempt, r.Delivery
	a.ResponseBody = truncateUTF8(a.ResponseBody, MaxResponseBody)
	a.Error = truncateUTF8(a.Error, 4096)
	var status *int
	if a.StatusCode != 0 {
		status = &a.StatusCode
	}
	var out AttemptOutcome
	tag, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code,
		latency_ms, response_body, error, succeeded)
		SELECT $1, $2, $3, $4, $5, $6, false WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)`,
		d.ID, a.AttemptedAt, status, a.Latency.Milliseconds(), a.ResponseBody, a.Error)
	if err != nil {
		return out, interpretError(err)
	}
	if tag.RowsAffected() == 0 {
		out.Stale = true // the endpoint was deleted
		return out, nil
	}
	newStatus, next := DeliveryPending, &r.NextAttemptAt
	if r.NextAttemptAt.IsZero() {
		newStatus, next = DeliveryFailed, nil
	}
	tag, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1,
		next_attempt_at = coalesce($4, next_attempt_at), claim_token = NULL, claimed_until = NULL,
		first_attempt_at = coalesce(first_attempt_at, $5), last_attempt_at = $5, last_status_code = $6,
		last_error = $7, completed_at = CASE WHEN $3 = 'pending' THEN NULL ELSE $5::timestamptz END
		WHERE id = $1 AND claim_token = $2::uuid AND status = 'pending'`,
		d.ID, d.ClaimToken, newStatus, next, a.AttemptedAt, status, a.Error)
	if err != nil {
		return out, interpretError(err)
	}
	out.Status = newStatus
	if tag.RowsAffected() == 0 {
		out.Stale = true
		return out, nil
	}
	err = recordFailure(ctx, tx, r, &out)
	return out, err
}

// recordSuccess is RecordAttempt for a 2xx.
func (db *DB) recordSuccess(ctx context.Context, d ClaimedDelivery, a WebhookAttempt) (AttemptOutcome, error) {
	outs, err := db.RecordSuccesses(ctx, []AttemptResult{{Delivery: d, Attempt: a}})
	if err != nil {
		return AttemptOutcome{}, err
	}
	return outs[0], nil
}

// RecordSuccesses records attempts answered with a 2xx, many in one
// statement (one round trip; atomic without a transaction block): each
// attempt row, and each delivery succeeded while its claim token still
// holds (otherwise its outcome is Stale), and the endpoints' failing
// streaks ended. Results that are not successes are refused.
func (db *DB) RecordSuccesses(ctx context.Context, rs []AttemptResult) ([]AttemptOutcome, error) {
	n := len(rs)
	ids, tokens, bodies := make([]string, n), make([]string, n), make([]string, n)
	ats, codes, ms := make([]time.Time, n), make([]int32, n), make([]int64, n)
	for i, r := range rs {
		if !r.Attempt.Succeeded || r.Attempt.StatusCode < 200 || r.Attempt.StatusCode > 299 {
			return nil, fmt.Errorf("record successes: delivery %s did not succeed", r.Delivery.ID)
		}
		ids[i], tokens[i], bodies[i] = r.Delivery.ID, r.Delivery.ClaimToken, truncateUTF8(r.Attempt.ResponseBody, MaxResponseBody)
		ats[i], codes[i], ms[i] = r.Attempt.AttemptedAt, int32(r.Attempt.StatusCode), r.Attempt.Latency.Milliseconds()
	}
	// Data-modifying CTEs run whether or not the SELECT reads them. As in
	// ClaimDeliveries, "completed_at IS NULL" stands for "pending" so that
	// the deliveries are found by primary key, not by a scan of the due
	// index and its dead entries.
	rows, err := db.pool.Query(ctx, `WITH input AS (
			SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::int[], $5::bigint[], $6::text[])
				AS t(id, token, at, code, ms, body)
		), upd AS (
			UPDATE webhook_deliveries d SET status = 'succeeded', attempts = d.attempts + 1,
				claim_token = NULL, claimed_until = NULL, first_attempt_at = coalesce(d.first_attempt_at, i.at),
				last_attempt_at = i.at, last_status_code = i.code, last_error = '', completed_at = i.at
			FROM input i
			WHERE d.id = i.id AND d.claim_token = i.token AND d.completed_at IS NULL
			RETURNING d.id, d.endpoint_id
		), att AS (
			INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, response_body, error, succeeded)
			SELECT i.id, i.at, i.code, i.ms, i.body, '', true FROM input i
			WHERE EXISTS (SELECT 1 FROM webhook_deliveries w WHERE w.id = i.id)
		), ep AS (
			UPDATE webhook_endpoints SET failing_since = NULL
			WHERE id IN (SELECT endpoint_id FROM upd) AND failing_since IS NOT NULL
		)
		SELECT id FROM upd`, ids, tokens, ats, codes, ms, bodies)
	if err != nil {
		return nil, fmt.Errorf("record successes: %w", interpretError(err))
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("record successes: %w", interpretError(err))
	}
	recorded := make(map[string]bool, len(done))
	for _, id := range done {
		recorded[id] = true
	}
	out := make([]AttemptOutcome, n)
	for i, id := range ids {
		out[i] = AttemptOutcome{Status: DeliverySucceeded, Stale: !recorded[id]}
	}
	return out, nil
}

func recordFailure(ctx context.Context, tx pgx.Tx, r AttemptResult, out *AttemptOutcome) error {
	at, endpointID := r.Attempt.AttemptedAt, r.Delivery.Endpoint.ID
	var (
		since  time.Time
		status string
	)
	err := tx.QueryRow(ctx, `UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $2)
		WHERE id = $1 RETURNING failing_since, status`, endpointID, at).Scan(&since, &status)
	if err != nil {
		return interpretError(err)
	}
	if r.DisableAfter <= 0 || status != EndpointEnabled || at.Sub(since) < r.DisableAfter {
		return nil
	}
	e, err := scanEndpoint(tx.QueryRow(ctx, `UPDATE webhook_endpoints SET status = 'disabled',
		disabled_at = $2, updated_at = $2 WHERE id = $1 AND status = 'enabled' RETURNING `+endpointColumns,
		endpointID, at))
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'failed', completed_at = $2,
		claim_token = NULL, claimed_until = NULL,
		last_error = CASE WHEN last_error = '' THEN 'endpoint disabled' ELSE last_error END
		WHERE endpoint_id = $1 AND status = 'pending'`, endpointID, at); err != nil {
		return interpretError(err)
	}
	payload, err := json.Marshal(endpointPayload{WebhookEndpoint: &endpointSnapshot{ID: e.ID, URL: e.URL,
		Description: e.Description, EventTypes: e.EventTypes, Status: e.Status, DisabledAt: e.DisabledAt,
		CreatedAt: e.CreatedAt}})
	if err != nil {
		return fmt.Errorf("endpoint %s snapshot: %w", e.ID, err)
	}
	eventID := checkout.NewID(checkout.PrefixEvent)
	if _, err := tx.Exec(ctx, `INSERT INTO events (id, type, merchant_id, payload, created_at)
		VALUES ($1, $2, $3, $4, $5)`, eventID, webhooks.EventEndpointDisabled, e.MerchantID, payload, at); err != nil {
		return interpretError(err)
	}
	out.Disabled, out.DisabledEventID = true, eventID
	return nil
}

// truncateUTF8 keeps at most n bytes of s, cut at a character boundary,
// with invalid UTF-8 and NUL bytes (which Postgres text refuses) replaced.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// ListenDeliveries holds a connection of its own, LISTENs on
// DeliveriesChannel and calls wake for every notification, until ctx ends
// (it then returns nil) or the connection fails (it returns the error; the
// caller reconnects). It calls wake once as soon as it listens, since
// notifications sent before that are lost.
func (db *DB) ListenDeliveries(ctx context.Context, wake func()) error {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("listen for deliveries: connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+DeliveriesChannel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("listen for deliveries: %w", err)
	}
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen for deliveries: %w", err)
		}
		wake()
	}
}
