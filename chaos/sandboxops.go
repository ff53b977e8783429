package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	checkout "github.com/checkoutd/checkoutd"
)

// LedgerOp is an operation that credited a watched account, as the
// sandbox recorded it: the ground truth the payments table is compared with.
type LedgerOp struct {
	ID          string
	PagingToken string
	Type        string
	TxHash      string
	To          string
	Amount      checkout.Amount
}

// opRecord is the part of a Horizon operation record the checker reads.
type opRecord struct {
	ID              string `json:"id"`
	PagingToken     string `json:"paging_token"`
	Type            string `json:"type"`
	TxHash          string `json:"transaction_hash"`
	Successful      bool   `json:"transaction_successful"`
	To              string `json:"to"`
	Amount          string `json:"amount"`
	Account         string `json:"account"`
	StartingBalance string `json:"starting_balance"`
	Into            string `json:"into"`
}

// SandboxCredits pages through GET /accounts/{account}/payments in ledger
// order, 200 at a time, from the paging token after (exclusive; empty for
// the beginning), and returns every successful operation that credited
// account: payments and path payments to it, its creation and merges into
// it.
func SandboxCredits(ctx context.Context, hc *http.Client, sandboxURL, account, after string) ([]LedgerOp, error) {
	var out []LedgerOp
	cursor := after
	for page := 0; page < 10_000; page++ {
		q := url.Values{"limit": {"200"}, "order": {"asc"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var body struct {
			Embedded struct {
				Records []opRecord `json:"records"`
			} `json:"_embedded"`
		}
		if err := getJSON(ctx, hc, sandboxURL+"/accounts/"+account+"/payments?"+q.Encode(), &body); err != nil {
			return nil, fmt.Errorf("sandbox payments of %s: %w", account, err)
		}
		recs := body.Embedded.Records
		// The sandbox may be reordering pages (a fault); ledger order is
		// what the next cursor and the checker rely on.
		sort.Slice(recs, func(i, j int) bool { return opIDLess(recs[i].PagingToken, recs[j].PagingToken) })
		for _, r := range recs {
			if !r.Successful {
				continue
			}
			var to, amount string
			switch r.Type {
			case "payment", "path_payment_strict_receive", "path_payment_strict_send":
				to, amount = r.To, r.Amount
			case "create_account":
				to, amount = r.Account, r.StartingBalance
			case "account_merge":
				to = r.Into
			default:
				continue
			}
			if to != account {
				continue
			}
			op := LedgerOp{ID: r.ID, PagingToken: r.PagingToken, Type: r.Type, TxHash: r.TxHash, To: to}
			if amount != "" {
				a, err := checkout.ParseAmount(amount)
				if err != nil {
					return nil, fmt.Errorf("sandbox operation %s: amount %q: %w", r.ID, amount, err)
				}
				op.Amount = a
			}
			out = append(out, op)
		}
		if len(recs) < 200 {
			return out, nil
		}
		cursor = recs[len(recs)-1].PagingToken
	}
	return nil, fmt.Errorf("sandbox payments of %s: too many pages", account)
}

// getJSON GETs u and decodes a 200 answer, retrying 429 and 503 answers
// (injected faults) for up to a minute.
func getJSON(ctx context.Context, hc *http.Client, u string, out any) error {
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode == http.StatusOK:
				return json.Unmarshal(raw, out)
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				err = fmt.Errorf("GET %s: %d", u, resp.StatusCode)
			default:
				return fmt.Errorf("GET %s: %d %.300s", u, resp.StatusCode, raw)
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// opIDLess orders operation ids (decimal TOIDs) numerically, which is
// ledger order.
func opIDLess(a, b string) bool {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return x < y
}
