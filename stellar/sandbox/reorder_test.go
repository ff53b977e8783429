package sandbox_test

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
)

// TestReorderFault checks that the reorder fault shuffles a JSON page and
// swaps adjacent stream events, and that it loses and adds nothing: the
// same operations come back, only in another order.
func TestReorderFault(t *testing.T) {
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true, Seed: 11})
	ctx := context.Background()
	alice, bob := e.funded(t), e.funded(t)
	const payments = 20
	for i := range payments {
		if _, err := e.wallet.Pay(ctx, alice, bob.Address(), txnbuild.NativeAsset{}, "1", txnbuild.MemoText(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	tokens := func(ops []operations.Operation) []int64 {
		out := make([]int64, len(ops))
		for i, op := range ops {
			out[i], _ = strconv.ParseInt(op.PagingToken(), 10, 64)
		}
		return out
	}
	ordered := tokens(e.stream(t, bob.Address(), "0", payments+1))
	if !slices.IsSorted(ordered) {
		t.Fatalf("stream out of order without the fault: %v", ordered)
	}
	if err := e.net.SetFaults(sandbox.Faults{Reorder: 1}); err != nil {
		t.Fatal(err)
	}

	page, err := e.client.Payments(horizonclient.OperationRequest{ForAccount: bob.Address(), Cursor: "0", Limit: 200, Order: horizonclient.OrderAsc})
	if err != nil {
		t.Fatal(err)
	}
	shuffled := tokens(page.Embedded.Records)
	if slices.IsSorted(shuffled) {
		t.Errorf("page still in order: %v", shuffled)
	}
	if got := slices.Sorted(slices.Values(shuffled)); !slices.Equal(got, ordered) {
		t.Errorf("shuffled page holds %v, want %v", got, ordered)
	}

	swapped := tokens(e.stream(t, bob.Address(), "0", payments+1))
	// Reorder 1 swaps every pair: (0 1) (2 3) ... arrive as 1 0 3 2 ...
	for i := 0; i+1 < len(swapped); i += 2 {
		if swapped[i] != ordered[i+1] || swapped[i+1] != ordered[i] {
			t.Fatalf("stream = %v, want the pairs of %v swapped", swapped, ordered)
		}
	}
	if got := slices.Sorted(slices.Values(swapped)); !slices.Equal(got, ordered) {
		t.Errorf("swapped stream holds %v, want %v", got, ordered)
	}

	var f sandbox.Faults
	if err := f.UnmarshalJSON([]byte(`{"reorder": 1.5}`)); err != nil {
		t.Fatal(err)
	}
	if err := e.net.SetFaults(f); err == nil {
		t.Error("reorder 1.5 accepted")
	}
}
