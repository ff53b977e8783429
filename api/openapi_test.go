package api

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
}

// TestOpenAPIMatchesRoutes checks that every route of the router is in the
// document and every operation of the document is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	s, err := New(Config{Store: nopStore{}, Sessions: nopSessions{}, Watchers: nopWatchers{}, PublicURL: "http://x",
		Hosted: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var routes []string
	err = s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil {
			// A prefix route with no methods: the hosted pages, which are
			// documented by their own package, not the merchant API.
			if strings.HasPrefix(tpl, "/c/") || strings.HasPrefix(tpl, "/v1/public/") {
				return nil
			}
			t.Errorf("route %s has no methods", tpl)
			return nil
		}
		for _, m := range methods {
			routes = append(routes, m+" "+tpl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	sort.Strings(routes)
	sort.Strings(documented)
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not documented in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("openapi.json documents %s, which is not a route", d)
		}
	}
	if len(routes) < 10 {
		t.Errorf("only %d routes: %v", len(routes), routes)
	}
}
