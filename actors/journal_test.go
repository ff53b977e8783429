package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

// newJournalEnv is newEnv with the session actors settling through a
// group-commit journal configured by jcfg.
func newJournalEnv(t *testing.T, jcfg actors.JournalConfig, acfg actors.Config) (*env, *actors.Journal) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.New(t)
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m, err := checkout.NewMerchant("Journal shop", keypair.MustRandom().Address(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	jcfg.Store = db
	j, err := actors.StartJournal(jcfg)
	if err != nil {
		t.Fatal(err)
	}
	acfg.Store = j
	sys, err := actors.Start(acfg, db)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the actors drain, then the journal stops,
	// then the pool closes.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := j.Stop(ctx); err != nil {
			t.Errorf("stop journal: %v", err)
		}
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sys.Stop(ctx)
	})
	return &env{t: t, db: db, sql: pool, merchant: m, system: sys, opSeq: new(atomic.Int64)}, j
}

// TestJournalGroupCommitManySessions has many sessions take many payments
// at once through the journal, every payment delivered twice: each session
// ends with exactly its payments, each operation has one row, and the
// commits were shared.
func TestJournalGroupCommitManySessions(t *testing.T) {
	const sessionsN, perSession = 200, 15
	e, j := newJournalEnv(t, actors.JournalConfig{MaxBatch: 64}, actors.Config{})
	closedAt := time.Now()
	sessions := make([]checkout.Session, sessionsN)
	for i := range sessions {
		// perSession payments of 0.0000001 to 0.0000015 XLM: never complete.
		sessions[i] = e.session("1000", checkout.NativeAsset, time.Hour)
	}
	type delivery struct {
		session string
		payment checkout.Payment
	}
	var deliveries []delivery
	var want checkout.Amount
	for k := range perSession {
		for _, s := range sessions {
			p := e.payment(s, "0.0000001", checkout.NativeAsset, closedAt)
			p.Amount = checkout.Amount(k + 1)
			want += p.Amount
			deliveries = append(deliveries, delivery{s.ID, p}, delivery{s.ID, p})
		}
	}

	var applied, already atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 512)
	errs := make(chan error, len(deliveries))
	for _, d := range deliveries {
		sem <- struct{}{}
		pp := e.system.Sessions().Observe(d.session, d.payment, time.Now())
		wg.Go(func() {
			defer func() { <-sem }()
			reply, err := pp.Wait()
			switch {
			case err != nil:
				errs <- fmt.Errorf("operation %s: %w", d.payment.OperationID, err)
			case reply.AlreadyApplied:
				already.Add(1)
			default:
				applied.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := int64(sessionsN * perSession)
	if applied.Load() != n || already.Load() != n {
		t.Fatalf("%d applied and %d already applied, want %d and %d", applied.Load(), already.Load(), n, n)
	}
	if got := e.count(`SELECT count(*) FROM payments`); got != int(n) {
		t.Fatalf("%d payment rows, want %d", got, n)
	}
	if got := e.count(`SELECT count(DISTINCT operation_id) FROM payments`); got != int(n) {
		t.Fatalf("%d distinct operations, want %d", got, n)
	}
	if got := e.count(`SELECT count(*) FROM events WHERE type = 'payment.received'`); got != int(n) {
		t.Fatalf("%d payment.received events, want %d", got, n)
	}
	var total checkout.Amount
	for _, s := range sessions {
		got := e.load(s.ID)
		if want := checkout.Amount(perSession * (perSession + 1) / 2); got.AmountReceived != want || got.Version != perSession+1 {
			t.Fatalf("session %s received %d at version %d, want %d at %d", s.ID, got.AmountReceived, got.Version, want, perSession+1)
		}
		total += got.AmountReceived
	}
	if total != want {
		t.Fatalf("%d stroops received in all, want %d", total, want)
	}
	st := j.Stats()
	t.Logf("%d settlements in %d batches (%.1f a batch)", st.Rows, st.Batches, float64(st.Rows)/float64(st.Batches))
	if st.Rows != 2*n || st.Batches >= st.Rows {
		t.Errorf("journal stats %+v: want %d rows in fewer batches", st, 2*n)
	}
}

// TestJournalBadRowsFailAlone puts good settlements and every kind of bad
// one into a single batch: the good ones commit, and each bad one gets its
// own error.
func TestJournalBadRowsFailAlone(t *testing.T) {
	const rows = 7
	e, j := newJournalEnv(t, actors.JournalConfig{Window: 2 * time.Second, MaxBatch: rows, Committers: 1}, actors.Config{})
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	decide := func(s checkout.Session, p checkout.Payment) checkout.Transition {
		tr, err := checkout.Apply(s, checkout.PaymentObserved{Payment: p}, now)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}

	good := []checkout.Session{e.session("10", checkout.NativeAsset, time.Hour),
		e.session("10", checkout.NativeAsset, time.Hour), e.session("10", checkout.NativeAsset, time.Hour)}
	dup := e.session("10", checkout.NativeAsset, time.Hour)
	stale := e.session("10", checkout.NativeAsset, time.Hour)
	broken := e.session("10", checkout.NativeAsset, time.Hour)

	// dup's operation is recorded already; stale moves on after being read.
	dupPay := e.payment(dup, "1", checkout.NativeAsset, now)
	if err := e.db.Settle(ctx, decide(dup, dupPay), dup.Version); err != nil {
		t.Fatal(err)
	}
	staleTr := decide(stale, e.payment(stale, "1", checkout.NativeAsset, now))
	if err := e.db.Settle(ctx, decide(stale, e.payment(stale, "2", checkout.NativeAsset, now)), stale.Version); err != nil {
		t.Fatal(err)
	}
	brokenTr := decide(broken, e.payment(broken, "1", checkout.NativeAsset, now))
	brokenTr.Session.Status, brokenTr.Session.ClosedAt = checkout.StatusComplete, now // 1 of 10 is not complete

	type row struct {
		name    string
		tr      checkout.Transition
		version int64
		want    func(error) bool
	}
	table := []row{
		{"good 0", decide(good[0], e.payment(good[0], "10", checkout.NativeAsset, now)), 1, isNil},
		{"duplicate operation", decide(dup, dupPay), 1, isErr(checkout.ErrAlreadyApplied)},
		{"good 1", decide(good[1], e.payment(good[1], "4", checkout.NativeAsset, now)), 1, isNil},
		{"stale version", staleTr, 1, isErr(checkout.ErrVersionConflict)},
		{"breaks a CHECK", brokenTr, 1, func(err error) bool {
			var ce *checkout.Error
			return errors.As(err, &ce) && ce.Code == checkout.EINVALID
		}},
		{"good 2", decide(good[2], e.payment(good[2], "11", checkout.NativeAsset, now)), 1, isNil},
		{"cancel", mustCancel(t, good[1], now), 1, nil}, // decided on version 1; good 1 may commit first
	}
	if len(table) != rows {
		t.Fatalf("%d rows, want %d", len(table), rows)
	}
	results := make([]error, len(table))
	var wg sync.WaitGroup
	for i, r := range table {
		wg.Go(func() { results[i] = j.Settle(ctx, r.tr, r.version) })
	}
	wg.Wait()
	if st := j.Stats(); st.Batches != 1 || st.Rows != rows {
		t.Fatalf("journal stats %+v, want one batch of %d", st, rows)
	}
	// good 1's payment and the cancel raced for version 1: exactly one won.
	if (results[2] == nil) == (results[6] == nil) {
		t.Fatalf("good 1: %v, cancel: %v; want exactly one to commit", results[2], results[6])
	}
	table[2].want, table[6].want = isNil, isErr(checkout.ErrVersionConflict)
	if results[2] != nil {
		table[2].want, table[6].want = table[6].want, table[2].want
	}
	for i, r := range table {
		if !r.want(results[i]) {
			t.Errorf("%s: %v", r.name, results[i])
		}
	}
	for i, r := range table {
		got := e.load(r.tr.Session.ID)
		if results[i] == nil && (got.Version != r.tr.Session.Version || got.AmountReceived != r.tr.Session.AmountReceived || got.Status != r.tr.Session.Status) {
			t.Errorf("%s committed, but the session is %+v", r.name, got)
		}
	}
	if got := e.load(broken.ID); got.Version != 1 || got.AmountReceived != 0 {
		t.Errorf("broken session changed: %+v", got)
	}
	if got := e.load(stale.ID); got.Version != 2 || got.AmountReceived != 2*checkout.StroopsPerUnit {
		t.Errorf("stale session: %+v, want only its committed 2 XLM", got)
	}
	if n := e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, broken.ID); n != 0 {
		t.Errorf("%d payments of the broken row, want 0", n)
	}
}

func mustCancel(t *testing.T, s checkout.Session, now time.Time) checkout.Transition {
	t.Helper()
	tr, err := checkout.Apply(s, checkout.Cancel{}, now)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func isNil(err error) bool { return err == nil }

func isErr(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// TestJournalCrashBetweenCommitAndAck loses a batch's acknowledgements after
// its commit, and fails another batch before its commit, as crashes would.
// The session actor reports the outcome as unknown; the watcher's
// redelivery then finds the committed payment already applied, and applies
// the one that was not committed. Nothing is counted twice.
func TestJournalCrashBetweenCommitAndAck(t *testing.T) {
	var mode atomic.Int32 // 1: drop the next batch's acks; 2: fail the next batch before it commits
	const (
		dropAcks = 1
		failSend = 2
	)
	errCrash := errors.New("injected crash before commit")
	e, j := newJournalEnv(t, actors.JournalConfig{Hooks: actors.JournalHooks{
		BeforeCommit: func(int) error {
			if mode.CompareAndSwap(failSend, 0) {
				return errCrash
			}
			return nil
		},
		AfterCommit: func(int) bool { return mode.CompareAndSwap(dropAcks, 0) },
	}}, actors.Config{StoreTimeout: 300 * time.Millisecond})
	s := e.session("10", checkout.NativeAsset, time.Hour)
	observe := func(p checkout.Payment) (*actors.PaymentReply, error) {
		return e.system.Sessions().Observe(s.ID, p, time.Now()).Wait()
	}

	committed := e.payment(s, "3", checkout.NativeAsset, time.Now())
	mode.Store(dropAcks)
	if _, err := observe(committed); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first delivery with its ack dropped: %v, want the store timeout", err)
	}
	if got := e.load(s.ID); got.AmountReceived != 3*checkout.StroopsPerUnit {
		t.Fatalf("after the dropped ack the session holds %s, want the committed 3 XLM", got.AmountReceived)
	}
	reply, err := observe(committed)
	if err != nil || !reply.AlreadyApplied || reply.Session.AmountReceived != 3*checkout.StroopsPerUnit {
		t.Fatalf("redelivery: %+v, %v; want already applied with 3 XLM", reply, err)
	}

	lost := e.payment(s, "4", checkout.NativeAsset, time.Now())
	mode.Store(failSend)
	if _, err := observe(lost); !errors.Is(err, errCrash) {
		t.Fatalf("delivery whose batch failed: %v, want the injected crash", err)
	}
	if got := e.load(s.ID); got.AmountReceived != 3*checkout.StroopsPerUnit {
		t.Fatalf("after the failed batch the session holds %s, want 3 XLM", got.AmountReceived)
	}
	reply, err = observe(lost)
	if err != nil || reply.AlreadyApplied || reply.Session.AmountReceived != 7*checkout.StroopsPerUnit {
		t.Fatalf("redelivery: %+v, %v; want applied, 7 XLM", reply, err)
	}

	// And straight to the journal: the same transition again, after a
	// dropped ack, is already applied.
	fresh := e.load(s.ID)
	tr, err := checkout.Apply(fresh, checkout.PaymentObserved{Payment: e.payment(s, "1", checkout.NativeAsset, time.Now())}, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	mode.Store(dropAcks)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := j.Settle(ctx, tr, fresh.Version); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Settle with its ack dropped: %v", err)
	}
	if err := j.Settle(t.Context(), tr, fresh.Version); !errors.Is(err, checkout.ErrAlreadyApplied) {
		t.Fatalf("Settle again: %v, want ErrAlreadyApplied", err)
	}
	if got := e.load(s.ID); got.AmountReceived != 8*checkout.StroopsPerUnit || got.Version != 4 {
		t.Fatalf("session holds %s at version %d, want 8 XLM at 4", got.AmountReceived, got.Version)
	}
	if n := e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID); n != 3 {
		t.Fatalf("%d payments, want 3", n)
	}
	if n := e.count(`SELECT count(*) FROM events WHERE session_id = $1`, s.ID); n != 3 {
		t.Fatalf("%d events, want 3", n)
	}
}

// TestJournalStop commits what is queued, then refuses.
func TestJournalStop(t *testing.T) {
	e, j := newJournalEnv(t, actors.JournalConfig{Window: 100 * time.Millisecond}, actors.Config{})
	s := e.session("10", checkout.NativeAsset, time.Hour)
	tr, err := checkout.Apply(s, checkout.PaymentObserved{Payment: e.payment(s, "1", checkout.NativeAsset, time.Now())}, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	settled := make(chan error, 1)
	go func() { settled <- j.Settle(t.Context(), tr, s.Version) }()
	time.Sleep(20 * time.Millisecond) // queued, inside the window
	if err := j.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-settled; err != nil {
		t.Fatalf("settlement queued before Stop: %v", err)
	}
	if err := j.Settle(t.Context(), tr, s.Version); !errors.Is(err, actors.ErrJournalStopped) {
		t.Fatalf("Settle after Stop: %v", err)
	}
}

// runParallel runs f(0..n-1) on workers goroutines and fails b on an error.
func runParallel(b testing.TB, n, workers int, f func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && failed.Load() == nil; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					failed.Store(&err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}
