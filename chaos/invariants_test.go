package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestCheckerCatchesViolations proves the checker is not vacuous: after a
// short clean run it must pass, and after each kind of damage is done to
// the final state it must report the invariant that damage breaks.
func TestCheckerCatchesViolations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	node := e.startInProc(InProcConfig{})
	e.setupTraffic(8)
	stop := e.runTraffic()
	time.Sleep(12 * time.Second)
	stop()
	if rep := e.settle(time.Minute); len(rep.Violations) > 0 {
		t.Fatal("the clean run already has violations")
	}
	// Stop checkoutd, or its recovery actor would repair the damage.
	if err := node.Stop(); err != nil {
		t.Logf("stop: %v", err)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(what, sql string, args ...any) int64 {
		t.Helper()
		tag, err := conn.Exec(ctx, sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return tag.RowsAffected()
	}
	// 1: a recorded payment disappears (with its events and deliveries).
	exec("lose a payment", `WITH p AS (SELECT id FROM payments WHERE disposition = 'unmatched' OR session_id IN
			(SELECT id FROM sessions WHERE status = 'open') LIMIT 1),
		ev AS (SELECT id FROM events WHERE payment_id IN (SELECT id FROM p)),
		d AS (DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM ev)),
		e AS (DELETE FROM events WHERE id IN (SELECT id FROM ev))
		DELETE FROM payments WHERE id IN (SELECT id FROM p)`)
	// 2: a session's amount drifts from its payments.
	if exec("drift an amount", `UPDATE sessions SET amount_received = amount_received + 1
		WHERE id = (SELECT id FROM sessions WHERE payment_status = 'overpaid' LIMIT 1)`) == 0 {
		exec("drift a status", `UPDATE sessions SET status = 'canceled', closed_at = now()
			WHERE id = (SELECT id FROM sessions WHERE status = 'open' LIMIT 1)`)
	}
	// 3: an event is left undelivered.
	exec("undeliver", `UPDATE webhook_deliveries SET status = 'pending', completed_at = NULL
		WHERE id = (SELECT id FROM webhook_deliveries LIMIT 1)`)
	// 4: a session completes twice. Both unique indexes stand in the way
	// (one completion per session, one event per payment and type); the
	// checker must catch it without them.
	exec("drop the indexes", `DROP INDEX events_one_completion; DROP INDEX events_one_per_payment`)
	exec("complete twice", `INSERT INTO events (id, type, merchant_id, session_id, payment_id, payload, created_at)
		SELECT 'evt_chaosduplicate', type, merchant_id, session_id, payment_id, payload, created_at
		FROM events WHERE type = 'checkout.session.completed' LIMIT 1`)
	// 3: an event names a payment that does not exist (the outbox has no
	// foreign keys, see migration 0004).
	exec("orphan an event", `INSERT INTO events (id, type, merchant_id, session_id, payment_id, payload, created_at)
		SELECT 'evt_chaosorphan', 'payment.received', merchant_id, session_id, 'pay_chaosnotthere', payload, created_at
		FROM events WHERE payment_id IS NOT NULL LIMIT 1`)
	// 3: the receiver got a webhook-id no event has.
	log := e.receiver.Log()
	log.mu.Lock()
	for u := range log.verifiers {
		if log.acked[u] == nil {
			log.acked[u] = map[string]int{}
		}
		log.acked[u]["evt_neverrecorded"] = 1
		break
	}
	log.mu.Unlock()

	rep, err := (&Checker{DSN: e.dsn, HTTP: e.hc}).Check(ctx, CheckInput{SandboxURL: e.sbURL, Accounts: e.watched,
		Hooks: log, Expect: e.traffic.Expect()})
	if err != nil {
		t.Fatal(err)
	}
	found := map[int]int{}
	for _, v := range rep.Violations {
		found[v.Invariant]++
		t.Logf("caught: %s", v)
	}
	for inv := InvExactlyOnce; inv <= InvOnce; inv++ {
		if found[inv] == 0 {
			t.Errorf("the checker missed the damage to invariant %d", inv)
		}
	}
	orphan := false
	for _, v := range rep.Violations {
		orphan = orphan || v.Subject == "evt_chaosorphan" && strings.Contains(v.Problem, "pay_chaosnotthere")
	}
	if !orphan {
		t.Error("the checker missed the event that names a missing payment")
	}
}

// TestReplayName: the replay command a soak round prints names the
// scenario's own test, which runs without CHAOS_SOAK_DURATION.
func TestReplayName(t *testing.T) {
	for in, want := range map[string]string{
		"TestKillCheckoutd":             "TestKillCheckoutd",
		"TestSoak/round3/KillCheckoutd": "TestKillCheckoutd",
		"TestSoak/round12/PostgresKill": "TestPostgresKill",
		"TestCheckerCatchesViolations":  "TestCheckerCatchesViolations",
	} {
		if got := replayName(in); got != want {
			t.Errorf("replayName(%q) = %q, want %q", in, got, want)
		}
	}
}
