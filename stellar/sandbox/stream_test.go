package sandbox_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

func TestStreamCutAndResume(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults sandbox.Faults
	}{
		{"cut after 3", sandbox.Faults{StreamCutAfter: 3}},
		{"cut at random", sandbox.Faults{StreamCutProbability: 0.3}},
		{"cut with replay", sandbox.Faults{StreamCutAfter: 4, ReplayOnReconnect: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sandbox.Config{CloseEachTransaction: true, Seed: 7})
			ctx := context.Background()
			alice, bob := e.funded(t), e.funded(t)
			const payments = 20
			for i := range payments {
				if _, err := e.wallet.Pay(ctx, alice, bob.Address(), txnbuild.NativeAsset{}, "1", txnbuild.MemoText(strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			want := e.stream(t, bob.Address(), "0", payments+1)
			if err := e.net.SetFaults(tc.faults); err != nil {
				t.Fatal(err)
			}
			// The client reconnects by itself with the last id as cursor; a
			// watcher drops anything at or before the last token it saw.
			dedupe := func(raw []operations.Operation) []string {
				var ids []string
				last := int64(0)
				for _, op := range raw {
					id, _ := strconv.ParseInt(op.PagingToken(), 10, 64)
					if id > last {
						last = id
						ids = append(ids, op.GetID())
					}
				}
				return ids
			}
			raw := e.streamUntil(t, bob.Address(), "0", func(ops []operations.Operation) bool {
				return len(dedupe(ops)) >= payments+1
			})
			got := dedupe(raw)
			if len(got) < payments+1 {
				t.Fatalf("got %d distinct records, want %d", len(got), payments+1)
			}
			for i, op := range want {
				if got[i] != op.GetID() {
					t.Fatalf("record %d is %s, want %s", i, got[i], op.GetID())
				}
			}
			if tc.faults.ReplayOnReconnect == 0 && len(raw) != len(got) {
				t.Errorf("%d duplicates without replay fault", len(raw)-len(got))
			}
			if tc.faults.ReplayOnReconnect > 0 && len(raw) == len(got) {
				t.Errorf("replay fault sent no duplicates")
			}
		})
	}
}

func TestPageAndStreamAgree(t *testing.T) {
	e := newEnv(t, sandbox.Config{LedgerClose: 10 * time.Millisecond})
	ctx := context.Background()
	alice, bob := e.funded(t), e.funded(t)
	for i := range 24 {
		if _, err := e.wallet.Pay(ctx, alice, bob.Address(), txnbuild.NativeAsset{}, "0.0000001", txnbuild.MemoID(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	streamed := e.stream(t, bob.Address(), "0", 25)
	var paged []string
	page, err := e.client.Payments(horizonclient.OperationRequest{ForAccount: bob.Address(), Limit: 7, Join: "transactions"})
	for err == nil && len(page.Embedded.Records) > 0 {
		for _, r := range page.Embedded.Records {
			paged = append(paged, r.GetID())
		}
		page, err = e.client.NextPaymentsPage(page)
	}
	if err != nil {
		t.Fatalf("paging: %v", err)
	}
	if len(paged) != len(streamed) {
		t.Fatalf("paged %d records, streamed %d", len(paged), len(streamed))
	}
	for i := range paged {
		if paged[i] != streamed[i].GetID() {
			t.Fatalf("record %d: page %s, stream %s", i, paged[i], streamed[i].GetID())
		}
	}
	desc, err := e.client.Payments(horizonclient.OperationRequest{ForAccount: bob.Address(), Order: horizonclient.OrderDesc, Limit: 3})
	if err != nil || len(desc.Embedded.Records) != 3 || desc.Embedded.Records[0].GetID() != paged[len(paged)-1] {
		t.Errorf("desc page %+v: %v", desc.Embedded.Records, err)
	}
	// Ids (and so paging tokens) grow strictly; created_at never goes back.
	for i := 1; i < len(streamed); i++ {
		a, _ := strconv.ParseInt(streamed[i-1].PagingToken(), 10, 64)
		b, _ := strconv.ParseInt(streamed[i].PagingToken(), 10, 64)
		if b <= a || streamed[i].GetBase().LedgerCloseTime.Before(streamed[i-1].GetBase().LedgerCloseTime) {
			t.Fatalf("record %d not after %d", i, i-1)
		}
	}
}

// A page states its length, and the body is that long and valid JSON:
// joined, plain, and empty.
func TestPageStatesItsLength(t *testing.T) {
	e := newEnv(t, sandbox.Config{LedgerClose: 10 * time.Millisecond})
	alice, bob := e.funded(t), e.funded(t)
	for i := range 3 {
		if _, err := e.wallet.Pay(context.Background(), alice, bob.Address(), txnbuild.NativeAsset{}, "0.0000001", txnbuild.MemoID(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"?limit=200&join=transactions", "?limit=2", "?cursor=999999999999999&limit=5"} {
		resp, err := http.Get(e.srv.URL + "/accounts/" + bob.Address() + "/payments" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var page struct {
			Embedded struct {
				Records []json.RawMessage `json:"records"`
			} `json:"_embedded"`
		}
		if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(body)) || json.Unmarshal(body, &page) != nil {
			t.Fatalf("%s: %d, Content-Length %d for %d bytes:\n%s", q, resp.StatusCode, resp.ContentLength, len(body), body)
		}
		if q == "?limit=2" && len(page.Embedded.Records) != 2 {
			t.Errorf("%s: %d records", q, len(page.Embedded.Records))
		}
	}
}

// rawStream reads SSE lines until n "id:" lines were seen.
func rawStream(t *testing.T, req *http.Request, n int) (ids []string, head string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var lines []string
	for len(ids) < n && sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			ids = append(ids, id)
		}
	}
	return ids, strings.Join(lines[:min(3, len(lines))], "\n")
}

func TestStreamFramingCursorNowAndLastEventID(t *testing.T) {
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true})
	ctx := context.Background()
	alice, bob := e.funded(t), e.funded(t)
	for range 3 {
		if _, err := e.wallet.Pay(ctx, alice, bob.Address(), txnbuild.NativeAsset{}, "1", nil); err != nil {
			t.Fatal(err)
		}
	}
	all := e.stream(t, bob.Address(), "0", 4)
	url := e.srv.URL + "/accounts/" + bob.Address() + "/payments"

	req, _ := http.NewRequest(http.MethodGet, url+"?cursor=0", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", all[1].PagingToken())
	ids, head := rawStream(t, req, 2)
	if !strings.HasPrefix(head, "retry: 1000\nevent: open\ndata: \"hello\"") {
		t.Errorf("stream head %q", head)
	}
	if ids[0] != all[2].PagingToken() || ids[1] != all[3].PagingToken() {
		t.Errorf("Last-Event-ID resume gave %v", ids)
	}

	// cursor=now sends only what happens after the stream opened.
	done := make(chan []string)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, url+"?cursor=now", nil)
		req.Header.Set("Accept", "text/event-stream")
		ids, _ := rawStream(t, req, 1)
		done <- ids
	}()
	time.Sleep(100 * time.Millisecond)
	tx, err := e.wallet.Pay(ctx, alice, bob.Address(), txnbuild.NativeAsset{}, "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ids := <-done:
		page, _ := e.client.Payments(horizonclient.OperationRequest{ForAccount: bob.Address(), Order: horizonclient.OrderDesc, Limit: 1})
		if len(ids) != 1 || ids[0] != page.Embedded.Records[0].PagingToken() || page.Embedded.Records[0].GetTransactionHash() != tx.Hash {
			t.Errorf("cursor=now gave %v", ids)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cursor=now stream got nothing")
	}
}

func TestHoldStream(t *testing.T) {
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true})
	ctx := context.Background()
	alice, bob := e.funded(t), e.funded(t)
	if err := e.net.SetFaults(sandbox.Faults{Hold: []string{bob.Address()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.wallet.Pay(ctx, alice, bob.Address(), txnbuild.NativeAsset{}, "1", nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/accounts/"+bob.Address()+"/payments?cursor=0", nil)
		req.Header.Set("Accept", "text/event-stream")
		ids, _ := rawStream(t, req, 2)
		got <- len(ids)
	}()
	select {
	case n := <-got:
		t.Fatalf("held stream sent %d events", n)
	case <-time.After(200 * time.Millisecond):
	}
	if err := e.net.SetFaults(sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n != 2 {
			t.Errorf("released stream sent %d events, want 2", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("released stream sent nothing")
	}
}
