package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/webhooks"
)

// WebhookStore is what the webhook endpoints API needs from Postgres.
// *persistence.DB implements it.
type WebhookStore interface {
	CreateWebhookEndpoint(ctx context.Context, e persistence.WebhookEndpoint) error
	GetWebhookEndpoint(ctx context.Context, merchantID, id string) (persistence.WebhookEndpoint, error)
	ListWebhookEndpoints(ctx context.Context, p persistence.ListParams) ([]persistence.WebhookEndpoint, bool, error)
	DeleteWebhookEndpoint(ctx context.Context, merchantID, id string) error
	RotateWebhookSecret(ctx context.Context, merchantID, id string, secret webhooks.Secret, now time.Time, overlap time.Duration) (persistence.WebhookEndpoint, error)
	ListWebhookDeliveries(ctx context.Context, endpointID string, p persistence.ListParams) ([]persistence.WebhookDelivery, bool, error)
	RedeliverEvent(ctx context.Context, merchantID, eventID, endpointID string, now time.Time) ([]persistence.WebhookDelivery, error)
}

// WebhookConfig configures the webhook endpoints API.
type WebhookConfig struct {
	// Store holds the endpoints. Default: Config.Store, when it implements
	// WebhookStore; without one the webhook routes answer 501.
	Store WebhookStore
	// Policy decides which endpoint URLs are accepted. The zero value is
	// production's: https only, no internal addresses.
	Policy webhooks.Policy
	// RotationOverlap is how long a rotated-out secret keeps signing beside
	// the new one. Default 24 h.
	RotationOverlap time.Duration
}

// webhookStore returns the configured store, or a 501 error.
func (s *Server) webhookStore() (WebhookStore, error) {
	if st := s.cfg.Webhooks.Store; st != nil {
		return st, nil
	}
	if st, ok := s.cfg.Store.(WebhookStore); ok {
		return st, nil
	}
	return nil, &checkout.Error{Code: checkout.ENOTIMPLEMENTED, Reason: "webhooks_unavailable",
		Message: "webhooks are not available on this server"}
}

// webhookRoutes adds the webhook routes to r.
func (s *Server) webhookRoutes(r *mux.Router) {
	r.Handle("/v1/webhook_endpoints", s.authed(s.idempotent(s.handleWebhookEndpointCreate))).Methods(http.MethodPost)
	r.Handle("/v1/webhook_endpoints", s.authed(s.handleWebhookEndpointList)).Methods(http.MethodGet)
	r.Handle("/v1/webhook_endpoints/{id}", s.authed(s.handleWebhookEndpointGet)).Methods(http.MethodGet)
	r.Handle("/v1/webhook_endpoints/{id}", s.authed(s.idempotent(s.handleWebhookEndpointDelete))).Methods(http.MethodDelete)
	r.Handle("/v1/webhook_endpoints/{id}/rotate_secret", s.authed(s.idempotent(s.handleWebhookEndpointRotate))).Methods(http.MethodPost)
	r.Handle("/v1/webhook_endpoints/{id}/deliveries", s.authed(s.handleWebhookDeliveryList)).Methods(http.MethodGet)
	r.Handle("/v1/events/{id}/redeliver", s.authed(s.idempotent(s.handleEventRedeliver))).Methods(http.MethodPost)
}

// webhookEndpointObject is a webhook endpoint as merchants see it. Secret is
// set only in the answers to create and rotate_secret.
type webhookEndpointObject struct {
	ID                      string     `json:"id"`
	Object                  string     `json:"object"`
	URL                     string     `json:"url"`
	Description             string     `json:"description"`
	Events                  []string   `json:"events"`
	Status                  string     `json:"status"`
	Secret                  string     `json:"secret,omitempty"`
	PreviousSecretExpiresAt *timestamp `json:"previous_secret_expires_at"`
	DisabledAt              *timestamp `json:"disabled_at"`
	CreatedAt               timestamp  `json:"created_at"`
}

func webhookEndpointObjectOf(e persistence.WebhookEndpoint, now time.Time) webhookEndpointObject {
	o := webhookEndpointObject{ID: e.ID, Object: "webhook_endpoint", URL: e.URL, Description: e.Description,
		Events: e.EventTypes, Status: e.Status, CreatedAt: timestamp(e.CreatedAt)}
	if o.Events == nil {
		o.Events = []string{}
	}
	if e.PreviousSecret != "" && now.Before(e.PreviousSecretExpiresAt) {
		t := timestamp(e.PreviousSecretExpiresAt)
		o.PreviousSecretExpiresAt = &t
	}
	if !e.DisabledAt.IsZero() {
		t := timestamp(e.DisabledAt)
		o.DisabledAt = &t
	}
	return o
}

// webhookDeliveryObject is one event's delivery to one endpoint.
type webhookDeliveryObject struct {
	ID             string     `json:"id"`
	Object         string     `json:"object"`
	Endpoint       string     `json:"endpoint"`
	Event          string     `json:"event"`
	EventType      string     `json:"event_type"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	NextAttemptAt  *timestamp `json:"next_attempt_at"`
	LastAttemptAt  *timestamp `json:"last_attempt_at"`
	LastStatusCode *int       `json:"last_status_code"`
	LastError      string     `json:"last_error"`
	Redelivery     bool       `json:"redelivery"`
	CreatedAt      timestamp  `json:"created_at"`
	CompletedAt    *timestamp `json:"completed_at"`
}

func webhookDeliveryObjectOf(d persistence.WebhookDelivery) webhookDeliveryObject {
	opt := func(t time.Time) *timestamp {
		if t.IsZero() {
			return nil
		}
		ts := timestamp(t)
		return &ts
	}
	o := webhookDeliveryObject{ID: d.ID, Object: "webhook_delivery", Endpoint: d.EndpointID, Event: d.EventID,
		EventType: string(d.EventType), Status: d.Status, Attempts: d.Attempts, LastAttemptAt: opt(d.LastAttemptAt),
		LastError: d.LastError, Redelivery: d.Redelivery, CreatedAt: timestamp(d.CreatedAt), CompletedAt: opt(d.CompletedAt)}
	if d.Status == persistence.DeliveryPending {
		o.NextAttemptAt = opt(d.NextAttemptAt)
	}
	if d.LastStatusCode != 0 {
		code := d.LastStatusCode
		o.LastStatusCode = &code
	}
	return o
}

// WebhookData renders the data object of an event's webhook: for session
// and payment events the same {"session", "payment"} the events API shows,
// from the same presenter; for webhook_endpoint.disabled the endpoint. The
// delivery engine calls it (actors.DeliveryConfig.Render).
func (s *Server) WebhookData(e persistence.OutboxEvent) (any, error) {
	if e.Endpoint != nil {
		return map[string]webhookEndpointObject{"webhook_endpoint": webhookEndpointObjectOf(*e.Endpoint, time.Time{})}, nil
	}
	o, err := s.eventObject(e.Event)
	if err != nil {
		return nil, err
	}
	return o.Data, nil
}

type webhookEndpointCreateRequest struct {
	URL         *string  `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

// handleWebhookEndpointCreate registers an endpoint and shows its secret,
// this once: POST /v1/webhook_endpoints.
func (s *Server) handleWebhookEndpointCreate(w http.ResponseWriter, r *http.Request) {
	info := requestInfoFrom(r.Context())
	st, err := s.webhookStore()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	var req webhookEndpointCreateRequest
	if err := decodeJSON(r, &req, false); err != nil {
		s.Error(w, r, err)
		return
	}
	if req.URL == nil {
		s.Error(w, r, checkout.InvalidParam("url", "parameter_missing", "url is required"))
		return
	}
	u, err := s.cfg.Webhooks.Policy.ValidateURL(*req.URL)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	events, err := webhooks.ValidateFilter(req.Events)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if len(req.Description) > 1000 {
		s.Error(w, r, checkout.InvalidParam("description", "description_invalid", "description must be at most 1000 bytes"))
		return
	}
	now := s.cfg.Clock().UTC().Truncate(time.Microsecond)
	e := persistence.WebhookEndpoint{ID: checkout.NewID(webhooks.PrefixEndpoint), MerchantID: info.merchant,
		URL: u.String(), Description: req.Description, EventTypes: events, Secret: webhooks.NewSecret(),
		Status: persistence.EndpointEnabled, CreatedAt: now, UpdatedAt: now}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	if err := st.CreateWebhookEndpoint(ctx, e); err != nil {
		s.Error(w, r, err)
		return
	}
	o := webhookEndpointObjectOf(e, now)
	o.Secret = e.Secret.Reveal()
	info.logger.Info("webhook endpoint created", "endpoint", e.ID)
	s.writeJSON(w, r, http.StatusCreated, o)
}

// endpointFromPath loads the merchant's endpoint named in the path; another
// merchant's is not found.
func (s *Server) endpointFromPath(ctx context.Context, r *http.Request, st WebhookStore) (persistence.WebhookEndpoint, error) {
	id := mux.Vars(r)["id"]
	if !checkout.HasPrefix(id, webhooks.PrefixEndpoint) {
		return persistence.WebhookEndpoint{}, checkout.ErrNotFound
	}
	return st.GetWebhookEndpoint(ctx, requestInfoFrom(ctx).merchant, id)
}

// handleWebhookEndpointGet returns an endpoint, without its secret:
// GET /v1/webhook_endpoints/{id}.
func (s *Server) handleWebhookEndpointGet(w http.ResponseWriter, r *http.Request) {
	st, err := s.webhookStore()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	e, err := s.endpointFromPath(ctx, r, st)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, webhookEndpointObjectOf(e, s.cfg.Clock()))
}

// handleWebhookEndpointList lists endpoints, newest first:
// GET /v1/webhook_endpoints.
func (s *Server) handleWebhookEndpointList(w http.ResponseWriter, r *http.Request) {
	st, err := s.webhookStore()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	p, err := listParams(r, "status", func(v string) bool {
		return v == persistence.EndpointEnabled || v == persistence.EndpointDisabled
	}, webhooks.PrefixEndpoint)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	eps, more, err := st.ListWebhookEndpoints(ctx, p)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	now := s.cfg.Clock()
	list := listObject[webhookEndpointObject]{Object: "list", Data: make([]webhookEndpointObject, 0, len(eps)),
		HasMore: more, URL: "/v1/webhook_endpoints"}
	for _, e := range eps {
		list.Data = append(list.Data, webhookEndpointObjectOf(e, now))
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

// handleWebhookEndpointDelete deletes an endpoint and its deliveries:
// DELETE /v1/webhook_endpoints/{id}.
func (s *Server) handleWebhookEndpointDelete(w http.ResponseWriter, r *http.Request) {
	st, err := s.webhookStore()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	id := mux.Vars(r)["id"]
	if !checkout.HasPrefix(id, webhooks.PrefixEndpoint) {
		s.Error(w, r, checkout.ErrNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	if err := st.DeleteWebhookEndpoint(ctx, requestInfoFrom(ctx).merchant, id); err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{id, "webhook_endpoint", true})
}

// handleWebhookEndpointRotate gives an endpoint a new secret, shown this
// once; the old one keeps signing beside it for RotationOverlap:
// POST /v1/webhook_endpoints/{id}/rotate_secret.
func (s *Server) handleWebhookEndpointRotate(w http.ResponseWriter, r *http.Request) {
	st, err := s.webhookStore()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	var req struct{}
	if err := decodeJSON(r, &req, true); err != nil {
		s.Error(w, r, err)
		return
	}
	id := mux.Vars(r)["id"]
	if !checkout.HasPrefix(id, webhooks.PrefixEndpoint) {
		s.Error(w, r, checkout.ErrNotFound)
		return
	}
	overlap := s.cfg.Webhooks.RotationOverlap
	if overlap <= 0 {
		overlap = 24 * time.Hour
	}
	now := s.cfg.Clock().UTC().Truncate(time.Microsecond)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	e, err := st.RotateWebhookSecret(ctx, requestInfoFrom(ctx).merchant, id, webhooks.NewSecret(), now, overlap)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	o := webhookEndpointObjectOf(e, now)
	o.Secret = e.Secret.Reveal()
	requestInfoFrom(ctx).logger.Info("webhook secret rotated", "endpoint", e.ID)
	s.writeJSON(w, r, http.StatusOK, o)
}

// handleWebhookDeliveryList lists an endpoint's deliveries, newest first,
// filtered by status: GET /v1/webhook_endpoints/{id}/deliveries.
func (s *Server) handleWebhookDeliveryList(w http.ResponseWriter, r *http.Request) {
	st, err := s.webhookStore()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	p, err := listParams(r, "status", func(v string) bool {
		switch v {
		case persistence.DeliveryPending, persistence.DeliverySucceeded, persistence.DeliveryFailed:
			return true
		}
		return false
	}, webhooks.PrefixDelivery)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	id := mux.Vars(r)["id"]
	if !checkout.HasPrefix(id, webhooks.PrefixEndpoint) {
		s.Error(w, r, checkout.ErrNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	ds, more, err := st.ListWebhookDeliveries(ctx, id, p)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeDeliveries(s, w, r, ds, more, "/v1/webhook_endpoints/"+id+"/deliveries")
}

func writeDeliveries(s *Server, w http.ResponseWriter, r *http.Request, ds []persistence.WebhookDelivery, more bool, url string) {
	list := listObject[webhookDeliveryObject]{Object: "list", Data: make([]webhookDeliveryObject, 0, len(ds)), HasMore: more, URL: url}
	for _, d := range ds {
		list.Data = append(list.Data, webhookDeliveryObjectOf(d))
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

// handleEventRedeliver sends an event again at once, with the same
// webhook-id: to endpoint_id if given, else to every enabled endpoint whose
// filter matches it. POST /v1/events/{id}/redeliver.
func (s *Server) handleEventRedeliver(w http.ResponseWriter, r *http.Request) {
	st, err := s.webhookStore()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	var req struct {
		EndpointID string `json:"endpoint_id"`
	}
	if err := decodeJSON(r, &req, true); err != nil {
		s.Error(w, r, err)
		return
	}
	id := mux.Vars(r)["id"]
	if !checkout.HasPrefix(id, checkout.PrefixEvent) {
		s.Error(w, r, checkout.ErrNotFound)
		return
	}
	if req.EndpointID != "" && !checkout.HasPrefix(req.EndpointID, webhooks.PrefixEndpoint) {
		s.Error(w, r, checkout.InvalidParam("endpoint_id", "resource_missing", "no such webhook endpoint"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	ds, err := st.RedeliverEvent(ctx, requestInfoFrom(ctx).merchant, id, req.EndpointID, s.cfg.Clock().UTC().Truncate(time.Microsecond))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeDeliveries(s, w, r, ds, false, "/v1/events/"+id+"/redeliver")
}
