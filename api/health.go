package api

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"time"
)

// OpenAPI is the API's OpenAPI document, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// readyTimeout bounds the readiness check's call to Postgres.
const readyTimeout = 2 * time.Second

// handleHealth answers while the process is alive: GET /healthz.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady answers 200 when checkoutd can do its work: Postgres answers
// and, if any account is watched, at least one watcher has its Horizon
// stream open (none open means Horizon is out of reach). Otherwise 503 with
// the error object saying which check failed: GET /readyz.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.Error(w, r, err)
		return
	}
	body := map[string]any{"status": "ready", "postgres": "ok"}
	if ws := s.cfg.WatcherStatus; ws != nil {
		body["watchers"] = map[string]int{"running": ws.Running(), "streaming": ws.Streaming()}
	}
	s.writeJSON(w, r, http.StatusOK, body)
}

// ready is the readiness check, shared by /readyz and the checkoutd_ready
// metric.
func (s *Server) ready(ctx context.Context) error {
	if err := s.cfg.Store.Ping(ctx); err != nil {
		return unavailable("postgres is not reachable", err)
	}
	if ws := s.cfg.WatcherStatus; ws != nil {
		if running, streaming := ws.Running(), ws.Streaming(); running > 0 && streaming == 0 {
			return unavailable("no ledger watcher is streaming from Horizon",
				fmt.Errorf("watchers: %d running, none streaming", running))
		}
	}
	return nil
}

// handleOpenAPI serves the OpenAPI document: GET /openapi.json.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(OpenAPI)
}
