package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
)

// TestFundCustomersManyTreasuries funds customers whose balances are so
// large that each needs a friendbot grant (a treasury) of its own, and
// checks that every one of them ends up holding exactly what was asked.
func TestFundCustomersManyTreasuries(t *testing.T) {
	net, err := sandbox.New(sandbox.Config{LedgerClose: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(net.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = net.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := net.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := newChain(srv.URL, srv.Client())
	each := 5_000 * stroops(stroopsPerUnit) // more than half a grant: one customer per treasury
	kps := make([]*keypair.Full, 7)
	for i := range kps {
		kps[i] = keypair.MustRandom()
	}
	if err := c.fundCustomers(ctx, kps, each); err != nil {
		t.Fatalf("fund customers: %v", err)
	}
	for _, kp := range kps {
		acc, err := net.Account(kp.Address())
		if err != nil {
			t.Fatalf("customer %s: %v", kp.Address(), err)
		}
		if got := acc.Balances[len(acc.Balances)-1]; got.Asset.Type != "native" || got.Balance != each.String() {
			t.Fatalf("customer %s holds %+v, want %s XLM", kp.Address(), acc.Balances, each.String())
		}
	}
}
