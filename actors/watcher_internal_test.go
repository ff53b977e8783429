package actors

import (
	"strconv"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
)

func TestWatermark(t *testing.T) {
	m := newWatermark("100")
	a, b, c, d := m.add("101"), m.add("102"), m.add("103"), m.add("104")
	check := func(wantLow string, wantPending int) {
		t.Helper()
		low, pending := m.state()
		if low != wantLow || pending != wantPending {
			t.Fatalf("state = %s, %d; want %s, %d", low, pending, wantLow, wantPending)
		}
	}
	check("100", 4)
	m.ack(c) // out of order: nothing moves
	check("100", 4)
	m.ack(b)
	check("100", 4)
	m.ack(a) // a, b and c are now a contiguous acknowledged prefix
	check("103", 1)
	e := m.add("105")
	m.ack(e)
	check("103", 2)
	m.ack(c) // a repeated or stale ack is harmless
	m.ack(a)
	check("103", 2)
	m.ack(d)
	check("105", 0)
	f := m.add("106")
	check("105", 1)
	m.ack(f)
	check("106", 0)
	m.ack(f + 10) // unknown sequence numbers are ignored
	check("106", 0)
}

func TestWatermarkManyOutOfOrder(t *testing.T) {
	m := newWatermark("0")
	const n = 1000
	seqs := make([]uint64, n)
	for i := range n {
		seqs[i] = m.add(strconv.Itoa(i + 1))
	}
	// Acknowledge every odd one, then every even one from the back: low
	// must stay put until the first is acknowledged.
	for i := 1; i < n; i += 2 {
		m.ack(seqs[i])
	}
	for i := n - 2; i > 0; i -= 2 {
		m.ack(seqs[i])
		if low, _ := m.state(); low != "0" {
			t.Fatalf("low = %s before the first operation was acknowledged", low)
		}
	}
	m.ack(seqs[0])
	if low, pending := m.state(); low != strconv.Itoa(n) || pending != 0 {
		t.Fatalf("state = %s, %d; want %d, 0", low, pending, n)
	}
}

func TestMatchKey(t *testing.T) {
	tests := []struct {
		name     string
		p        checkout.Payment
		wantType checkout.MemoType
		wantMemo string
		ok       bool
	}{
		{"text", checkout.Payment{MemoType: "text", Memo: "ABC"}, checkout.MemoText, "ABC", true},
		{"id", checkout.Payment{MemoType: "id", Memo: "42"}, checkout.MemoID, "42", true},
		{"muxed wins over a memo", checkout.Payment{ToMuxedID: "7", MemoType: "text", Memo: "ABC"}, checkout.MemoMuxed, "7", true},
		{"muxed id zero", checkout.Payment{ToMuxedID: "0"}, checkout.MemoMuxed, "0", true},
		{"hash memo names nothing", checkout.Payment{MemoType: "hash", Memo: "AAAA"}, "", "", false},
		{"no memo", checkout.Payment{}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, memo, ok := matchKey(tt.p)
			if typ != tt.wantType || memo != tt.wantMemo || ok != tt.ok {
				t.Fatalf("matchKey = %q, %q, %v", typ, memo, ok)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for attempt := range 20 {
		d := backoff(attempt, 100*time.Millisecond, 2*time.Second)
		limit := 100 * time.Millisecond << min(attempt, 10)
		if limit > 2*time.Second {
			limit = 2 * time.Second
		}
		if d < limit/2 || d > limit {
			t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, d, limit/2, limit)
		}
	}
}
