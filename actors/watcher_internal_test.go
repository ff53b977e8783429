package actors

import (
	"strconv"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
)

func TestWatermark(t *testing.T) {
	m := newWatermark("100")
	take := func(key int64, want bool) {
		t.Helper()
		if got := m.take(key); got != want {
			t.Fatalf("take(%d) = %v, want %v", key, got, want)
		}
	}
	take(100, false) // at the floor: already durable
	take(99, false)
	take(101, true)
	take(103, true)
	take(102, true)
	take(103, false) // taken already
	m.ack(103)
	m.ack(103) // a repeated ack is harmless
	m.ack(200) // so is an unknown one
	if newest, pending := m.state(); newest != 103 || pending != 2 {
		t.Fatalf("state = %d, %d; want 103, 2", newest, pending)
	}
	m.list("100", "103")
	if _, ok := m.listedPrefix(); ok {
		t.Fatal("a listed prefix while 101 is not acknowledged")
	}
	m.ack(101)
	m.advance("101")
	take(101, false) // at or below the floor
	m.advance("50")  // the floor never goes down
	if got, ok := m.listedPrefix(); ok {
		t.Fatalf("listedPrefix = %s while 102 is not acknowledged", got)
	}
	if _, pending := m.state(); pending != 1 || m.covered() {
		t.Fatalf("pending = %d, want 1 (102)", pending)
	}
	m.ack(102)
	if got, ok := m.listedPrefix(); !ok || got != "103" {
		t.Fatalf("listedPrefix = %s, %v; want 103", got, ok)
	}
	m.advance("103")
	if newest, pending := m.state(); newest != 103 || pending != 0 || !m.covered() {
		t.Fatalf("state = %d, %d, covered %v after advancing over everything", newest, pending, m.covered())
	}
}

func TestWatermarkManyOutOfOrder(t *testing.T) {
	m := newWatermark("0")
	const n = 1000
	for i := int64(n); i >= 1; i-- {
		if !m.take(i) {
			t.Fatalf("take(%d) = false", i)
		}
	}
	m.list("0", strconv.Itoa(n))
	for i := int64(2); i <= n; i++ {
		m.ack(i)
	}
	if got, ok := m.listedPrefix(); ok {
		t.Fatalf("listedPrefix = %s before the first operation was acknowledged", got)
	}
	m.ack(1)
	if got, ok := m.listedPrefix(); !ok || got != strconv.Itoa(n) {
		t.Fatalf("listedPrefix = %s, %v; want %d", got, ok, n)
	}
	m.advance(strconv.Itoa(n))
	if len(m.ops) != 0 {
		t.Fatalf("%d operations kept after the floor passed them all", len(m.ops))
	}
}

func TestWatermarkListed(t *testing.T) {
	m := newWatermark("100")
	for _, k := range []int64{101, 102, 103, 105} {
		m.take(k)
	}
	if _, ok := m.listedPrefix(); ok {
		t.Fatal("a listed prefix before any page was read")
	}
	m.list("104", "105") // after a hole: (100, 104] is not known
	if _, ok := m.listedPrefix(); ok {
		t.Fatal("a page read after a hole extended the listed range")
	}
	m.list("100", "103")
	m.ack(101)
	m.ack(103)
	if got, ok := m.listedPrefix(); !ok || got != "101" {
		t.Fatalf("listedPrefix = %s, %v; want 101 (102 is not acknowledged)", got, ok)
	}
	m.ack(102)
	m.ack(105)
	if got, ok := m.listedPrefix(); !ok || got != "103" {
		t.Fatalf("listedPrefix = %s, %v; want 103 (105 is not listed)", got, ok)
	}
	m.advance("103")
	m.list("103", "105")
	if got, ok := m.listedPrefix(); !ok || got != "105" {
		t.Fatalf("listedPrefix = %s, %v; want 105", got, ok)
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
