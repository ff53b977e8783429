package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"

	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/support/render/problem"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// ProblemError is an error answered as a Horizon problem (RFC 7807), such
// as a failed transaction with extras.result_codes.
type ProblemError struct {
	// P is the problem exactly as the HTTP API renders it.
	P problem.P
}

// Error implements error.
func (e *ProblemError) Error() string {
	if rc := e.ResultCodes(); rc != nil {
		return fmt.Sprintf("sandbox: %s (%s %v)", e.P.Title, rc.TransactionCode, rc.OperationCodes)
	}
	return fmt.Sprintf("sandbox: %s: %s", e.P.Title, e.P.Detail)
}

// ResultCodes returns the transaction's result codes, or nil if the problem
// is not about a transaction result.
func (e *ProblemError) ResultCodes() *hProtocol.TransactionResultCodes {
	rc, _ := e.P.Extras["result_codes"].(hProtocol.TransactionResultCodes)
	if rc.TransactionCode == "" {
		return nil
	}
	return &rc
}

const problemBase = "https://stellar.org/horizon-errors/"

var (
	problemNotFound = problem.P{
		Type: problemBase + "not_found", Title: "Resource Missing", Status: http.StatusNotFound,
		Detail: "The resource at the url requested was not found.  This usually occurs for one of two reasons:  " +
			"The url requested is not valid, or no data in our database could be found with the parameters provided.",
	}
	problemRateLimited = problem.P{
		Type: problemBase + "rate_limit_exceeded", Title: "Rate Limit Exceeded", Status: http.StatusTooManyRequests,
		Detail: "The rate limit for the requesting IP address is over its alloted limit.",
	}
	problemUnavailable = problem.P{
		Type: problemBase + "service_unavailable", Title: "Service Unavailable", Status: http.StatusServiceUnavailable,
		Detail: "The sandbox network is temporarily unavailable.",
	}
	problemTimeout = problem.P{
		Type: problemBase + "timeout", Title: "Timeout", Status: http.StatusGatewayTimeout,
		Detail: "Your request timed out before completing.  The transaction may still be included in a later ledger.",
	}
	problemTooLarge = problem.P{
		Type: problemBase + "request_entity_too_large", Title: "Request Entity Too Large", Status: http.StatusRequestEntityTooLarge,
		Detail: "The request body is larger than the sandbox accepts.",
	}
	problemNotAcceptable = problem.P{
		Type: problemBase + "not_acceptable", Title: "An acceptable response content-type could not be provided for this request",
		Status: http.StatusNotAcceptable,
	}
)

func badRequest(field, reason string) problem.P {
	return problem.P{
		Type: problemBase + "bad_request", Title: "Bad Request", Status: http.StatusBadRequest,
		Detail: "The request you sent was invalid in some way.",
		Extras: map[string]any{"invalid_field": field, "reason": reason},
	}
}

func malformedTx(envelope string, reason string) *problem.P {
	return &problem.P{
		Type: problemBase + "transaction_malformed", Title: "Transaction Malformed", Status: http.StatusBadRequest,
		Detail: "Horizon could not decode the transaction envelope in this request. A transaction should be an " +
			"XDR TransactionEnvelope struct encoded using base64.  The envelope read from this request is echoed in " +
			"the `extras.envelope_xdr` field of this response for your convenience.",
		Extras: map[string]any{"envelope_xdr": envelope, "reason": reason},
	}
}

// txFailed is Horizon's transaction_failed problem with result codes.
func txFailed(envelope string, code xdr.TransactionResultCode, results []xdr.OperationResult, fee int64) *problem.P {
	codes := hProtocol.TransactionResultCodes{TransactionCode: txCodeNames[code]}
	for _, r := range results {
		codes.OperationCodes = append(codes.OperationCodes, opCodeName(r))
	}
	return &problem.P{
		Type: problemBase + "transaction_failed", Title: "Transaction Failed", Status: http.StatusBadRequest,
		Detail: txFailedDetail,
		Extras: map[string]any{
			"envelope_xdr": envelope,
			"result_codes": codes,
			"result_xdr":   txResultXDR(code, fee, results),
		},
	}
}

const txFailedDetail = "The transaction failed when submitted to the stellar network. The `extras.result_codes` field on " +
	"this response contains further details.  Descriptions of each code can be found at: " +
	"https://developers.stellar.org/api/errors/http-status-codes/horizon-specific/transaction-failed/"

func writeProblem(w http.ResponseWriter, p problem.P) {
	b, err := json.Marshal(p)
	if err != nil {
		b = []byte(`{"type":"` + problemBase + `server_error","title":"Internal Server Error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, problem.P{Type: problemBase + "server_error", Title: "Internal Server Error", Status: http.StatusInternalServerError})
		return
	}
	writeRawJSON(w, status, b)
}

// halJSON is the Content-Type of every JSON answer. It is shared rather
// than built per answer: net/http copies the header when writing it.
var halJSON = []string{"application/hal+json; charset=utf-8"}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header()["Content-Type"] = halJSON
	w.WriteHeader(status)
	_, _ = w.Write(b) // #nosec G705 -- marshalled JSON served as application/hal+json, never as HTML
}
