package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// kind is what a session's customer does.
type kind string

// The kinds of payment a run mixes.
const (
	// kindExact pays the amount in one payment.
	kindExact kind = "exact"
	// kindPartial pays 40% and then the rest, in two transactions.
	kindPartial kind = "partial"
	// kindOverpaid pays the amount and 1.5 XLM more.
	kindOverpaid kind = "overpaid"
	// kindWrongAsset is a session priced in loadgen's own credit asset,
	// paid in XLM: the payment names the session but not its asset.
	kindWrongAsset kind = "wrong_asset"
	// kindLate pays the full amount after the session closed: canceled
	// through the API, or expired (--late).
	kindLate kind = "late"
	// kindUnpaid creates the session and pays nothing: with a mix of
	// only this kind a run is session creation alone, and the sessions it
	// leaves open can be counted toward the active ones.
	kindUnpaid kind = "unpaid"
)

// kinds lists every kind in the order reports show them.
var kinds = []kind{kindExact, kindPartial, kindOverpaid, kindWrongAsset, kindLate, kindUnpaid}

const defaultMix = "exact=70,partial=10,overpaid=10,wrong_asset=5,late=5"

// mix is the weight of each kind.
type mix map[kind]int

func parseMix(spec string) (mix, error) {
	m := mix{}
	total := 0
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want kind=weight", part)
		}
		k := kind(strings.TrimSpace(name))
		if !slices.Contains(kinds, k) {
			return nil, fmt.Errorf("unknown kind %q: want exact, partial, overpaid, wrong_asset, late or unpaid", k)
		}
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: the weight must be a whole number, 0 or more", part)
		}
		m[k] += n
		total += n
	}
	if total == 0 {
		return nil, fmt.Errorf("%q: the weights add up to zero", spec)
	}
	return m, nil
}

func (m mix) String() string {
	var parts []string
	for _, k := range kinds {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return strings.Join(parts, ",")
}

// assign returns n kinds in the mix's proportions, by largest remainder,
// so that every kind with a weight gets its share even in a small run,
// shuffled with seed.
func (m mix) assign(n int, seed uint64) []kind {
	total := 0
	for _, w := range m {
		total += w
	}
	type share struct {
		k    kind
		n    int
		frac float64
	}
	var shares []share
	given := 0
	for _, k := range kinds {
		if m[k] == 0 {
			continue
		}
		exact := float64(n) * float64(m[k]) / float64(total)
		s := share{k: k, n: int(exact)}
		s.frac = exact - float64(s.n)
		given += s.n
		shares = append(shares, s)
	}
	sort.SliceStable(shares, func(i, j int) bool { return shares[i].frac > shares[j].frac })
	for i := 0; given < n; i = (i + 1) % len(shares) {
		shares[i].n++
		given++
	}
	out := make([]kind, 0, n)
	for _, s := range shares {
		for range s.n {
			out = append(out, s.k)
		}
	}
	r := rand.New(rand.NewPCG(seed, 0x10adc0de))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// stroops is an amount in the seventh decimal of a unit.
type stroops int64

const stroopsPerUnit = 10_000_000

// String formats s as the API's seven-decimal string.
func (s stroops) String() string {
	return fmt.Sprintf("%d.%07d", s/stroopsPerUnit, s%stroopsPerUnit)
}

// expectation is how a session of a kind must end.
type expectation struct {
	Status        string
	PaymentStatus string
	// Dispositions are those of the session's payments, in the order they
	// were submitted.
	Dispositions []string
	// Events counts the webhook events of each type the session must get.
	Events map[string]int
}

// expect returns the expectation for a session of kind k.
func expect(k kind, lateMode string) expectation {
	switch k {
	case kindExact:
		return expectation{"complete", "paid", []string{"applied"},
			map[string]int{"payment.received": 1, "checkout.session.completed": 1}}
	case kindPartial:
		return expectation{"complete", "paid", []string{"applied", "applied"},
			map[string]int{"payment.received": 2, "checkout.session.completed": 1}}
	case kindOverpaid:
		return expectation{"complete", "overpaid", []string{"applied"},
			map[string]int{"payment.received": 1, "checkout.session.completed": 1}}
	case kindWrongAsset:
		return expectation{"open", "unpaid", []string{"wrong_asset"},
			map[string]int{"payment.wrong_asset": 1}}
	case kindUnpaid:
		return expectation{"open", "unpaid", nil, map[string]int{}}
	case kindLate:
		if lateMode == lateExpire {
			return expectation{"expired", "unpaid", []string{"late"},
				map[string]int{"checkout.session.expired": 1, "payment.late": 1}}
		}
		return expectation{"canceled", "unpaid", []string{"late"},
			map[string]int{"checkout.session.canceled": 1, "payment.late": 1}}
	}
	panic("unknown kind " + string(k))
}

// pays reports whether any session of the mix is paid, so that the run
// needs customers on the sandbox.
func (m mix) pays() bool {
	for k, w := range m {
		if k != kindUnpaid && w > 0 {
			return true
		}
	}
	return false
}

// completes reports whether sessions of kind k end complete, so that they
// have a payment → complete latency.
func (k kind) completes() bool {
	return k == kindExact || k == kindPartial || k == kindOverpaid
}
