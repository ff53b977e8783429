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
		Hosted: http.NotFoundHandler(), MetricsHandler: http.NotFoundHandler()})
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

// TestOpenAPIValidationCatchesDrift is the control for the response
// validation every API test runs: responses that break the document fail.
func TestOpenAPIValidationCatchesDrift(t *testing.T) {
	doc := loadOpenAPI(t)
	r, err := http.NewRequest(http.MethodGet, "/v1/checkout/sessions/cs_aaaaaaaaaaaaaaaaaaaaaaaa", nil)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"id": "cs_aaaaaaaaaaaaaaaaaaaaaaaa"}
	hdr := http.Header{"Content-Type": {"application/json"}, "Request-Id": {"req_x"}}
	good := `{"id":"cs_aaaaaaaaaaaaaaaaaaaaaaaa","object":"checkout.session","status":"open","payment_status":"unpaid",
		"amount":"1.0000000","amount_received":"0.0000000","asset":"XLM",
		"pay_to":{"destination":"GA","memo":"M","memo_type":"text"},"payment_uri":"web+stellar:pay?destination=GA",
		"url":"https://x/c/cs_aaaaaaaaaaaaaaaaaaaaaaaa","expires_at":"2030-01-01T00:00:00Z","created_at":"2030-01-01T00:00:00Z",
		"closed_at":null,"metadata":{},"success_url":"","cancel_url":""}`
	if err := validateResponse(doc, r, "/v1/checkout/sessions/{id}", vars, response{status: 200, header: hdr, body: []byte(good)}); err != nil {
		t.Fatalf("a good session fails: %v", err)
	}
	for name, body := range map[string]string{
		"amount as a number":  strings.Replace(good, `"amount":"1.0000000"`, `"amount":1`, 1),
		"amount, 2 decimals":  strings.Replace(good, `"amount":"1.0000000"`, `"amount":"1.00"`, 1),
		"unknown status":      strings.Replace(good, `"status":"open"`, `"status":"paid"`, 1),
		"missing field":       strings.Replace(good, `"asset":"XLM",`, ``, 1),
		"extra field":         strings.Replace(good, `"asset":"XLM",`, `"asset":"XLM","merchant_id":"mer_x",`, 1),
		"wrong object":        strings.Replace(good, `"checkout.session"`, `"session"`, 1),
		"not an error object": `{"message":"no"}`,
	} {
		status := 200
		if name == "not an error object" {
			status = 404
		}
		if err := validateResponse(doc, r, "/v1/checkout/sessions/{id}", vars, response{status: status, header: hdr, body: []byte(body)}); err == nil {
			t.Errorf("%s: validates", name)
		}
	}
}
