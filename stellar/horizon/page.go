package horizon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
)

// MaxPageLimit is the most records Horizon serves in one page.
const MaxPageLimit = 200

// PaymentsPage reads one JSON page of /accounts/{account}/payments: the
// payments after cursor, oldest first, joined with their transactions, at
// most limit of them (1 to MaxPageLimit). A page shorter than limit reached
// the end of the account's history as Horizon had it. Operations of a type
// the SDK cannot decode come back as a bare operations.Base, as from
// StreamPayments.
func (c *Client) PaymentsPage(ctx context.Context, account, cursor string, limit int) ([]operations.Operation, error) {
	if cursor == "" {
		return nil, fmt.Errorf("page payments of %s: empty cursor", account)
	}
	if limit < 1 || limit > MaxPageLimit {
		return nil, fmt.Errorf("page payments of %s: limit %d is not in [1, %d]", account, limit, MaxPageLimit)
	}
	u := fmt.Sprintf("%s/accounts/%s/payments?%s", c.base, url.PathEscape(account), url.Values{
		"cursor": {cursor}, "limit": {strconv.Itoa(limit)}, "order": {"asc"}, "join": {"transactions"},
	}.Encode())
	ops, err := c.fetchPage(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("page payments of %s after %s: %w", account, cursor, err)
	}
	return ops, nil
}

func (c *Client) fetchPage(ctx context.Context, u string) ([]operations.Operation, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/hal+json, application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, statusError(resp)
	}
	var page struct {
		Embedded struct {
			Records []json.RawMessage `json:"records"`
		} `json:"_embedded"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, fmt.Errorf("decode page: %w", err)
	}
	ops := make([]operations.Operation, len(page.Embedded.Records))
	for i, rec := range page.Embedded.Records {
		if ops[i], err = DecodeOperation(rec); err != nil {
			return nil, err
		}
	}
	return ops, nil
}
