package main

import (
	"strings"
	"testing"
)

func TestParseMix(t *testing.T) {
	m, err := parseMix(defaultMix)
	if err != nil {
		t.Fatal(err)
	}
	if m.String() != defaultMix {
		t.Errorf("round trip %q, want %q", m, defaultMix)
	}
	for _, bad := range []string{"", "exact", "exact=-1", "exact=x", "refund=5", "exact=0,late=0"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) accepted", bad)
		}
	}
}

func TestAssignKeepsProportionsAndEveryKind(t *testing.T) {
	m, _ := parseMix(defaultMix)
	for _, n := range []int{1, 7, 20, 30, 500} {
		ks := m.assign(n, 1)
		if len(ks) != n {
			t.Fatalf("assign(%d) gave %d", n, len(ks))
		}
		count := map[kind]int{}
		for _, k := range ks {
			count[k]++
		}
		if n == 500 && (count[kindExact] != 350 || count[kindLate] != 25 || count[kindWrongAsset] != 25) {
			t.Errorf("500 sessions: %v", count)
		}
		if n >= 20 && len(count) != len(m) {
			t.Errorf("%d sessions miss a kind: %v", n, count)
		}
	}
	if a, b := m.assign(50, 3), m.assign(50, 3); strings.Join(kindStrings(a), ",") != strings.Join(kindStrings(b), ",") {
		t.Error("the same seed gave another order")
	}
}

func kindStrings(ks []kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func TestStroopsString(t *testing.T) {
	for s, want := range map[stroops]string{0: "0.0000000", 1: "0.0000001", 125_000_000: "12.5000000"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int64(s), s.String(), want)
		}
	}
}

func TestFlagsRefuseRemoteHostsAndLiveKeys(t *testing.T) {
	t.Setenv("CHECKOUTD_API_KEY", "")
	base := []string{"--dev-env", "", "--api-key", "sk_test_x"}
	cases := []struct {
		args []string
		ok   bool
	}{
		{base, true},
		{append(base, "--api", "http://localhost:8080"), true},
		{append(base, "--api", "http://192.0.2.7:8080"), false},
		{append(base, "--sandbox", "http://192.0.2.7:8000"), false},
		{append(base, "--api", "http://192.0.2.7:8080", "--allow-remote"), true},
		{[]string{"--dev-env", "", "--api-key", "sk_live_x"}, false},
		{[]string{"--dev-env", ""}, false},
		{append(base, "--webhook-addr", "0.0.0.0:0"), false},
		{append(base, "--late", "never"), false},
	}
	for _, c := range cases {
		_, err := parseFlags(c.args, &strings.Builder{})
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v, want ok %v", c.args, err, c.ok)
		}
	}
}
