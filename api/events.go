package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/gorilla/mux"

	checkout "github.com/checkoutd/checkoutd"
)

// handleEventList lists the merchant's events, newest first:
// GET /v1/events.
func (s *Server) handleEventList(w http.ResponseWriter, r *http.Request) {
	p, err := listParams(r, "type", func(v string) bool {
		return slices.Contains(checkout.EventTypes, checkout.EventType(v))
	}, checkout.PrefixEvent)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	events, more, err := s.cfg.Store.ListEvents(ctx, p)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	list := listObject[eventObject]{Object: "list", Data: make([]eventObject, 0, len(events)), HasMore: more, URL: "/v1/events"}
	for _, e := range events {
		o, err := s.eventObject(e)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		list.Data = append(list.Data, o)
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

// handleEventGet returns one event: GET /v1/events/{id}.
func (s *Server) handleEventGet(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !checkout.HasPrefix(id, checkout.PrefixEvent) {
		s.Error(w, r, checkout.ErrNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	e, err := s.cfg.Store.GetEvent(ctx, requestInfoFrom(r.Context()).merchant, id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	o, err := s.eventObject(e)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, o)
}
