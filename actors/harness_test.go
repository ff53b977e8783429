package actors_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
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

// env is one test's database, merchant and running actor system.
type env struct {
	t        *testing.T
	db       *persistence.DB
	sql      *pgxpool.Pool
	merchant checkout.Merchant
	system   *actors.System
	opSeq    *atomic.Int64
}

func newEnv(t *testing.T, cfg actors.Config) *env {
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
	m, err := checkout.NewMerchant("Test shop", keypair.MustRandom().Address(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, sql: pool, merchant: m, opSeq: new(atomic.Int64)}
	e.system = e.start(cfg)
	return e
}

// start starts another actor system on the same database: a second node.
func (e *env) start(cfg actors.Config) *actors.System {
	e.t.Helper()
	if cfg.Store == nil {
		cfg.Store = e.db
	}
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	sys, err := actors.Start(cfg, e.db)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sys.Stop(ctx)
	})
	return sys
}

func (e *env) session(amount string, asset checkout.Asset, expiresIn time.Duration) checkout.Session {
	e.t.Helper()
	s, err := checkout.NewSession(checkout.SessionParams{
		MerchantID: e.merchant.ID, ReceivingAccount: e.merchant.Account,
		Amount: mustAmount(e.t, amount), Asset: asset, ExpiresIn: expiresIn, MemoType: checkout.MemoText,
	}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.CreateSession(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// payment is a payment to s's account and memo, closing in a ledger at
// closedAt.
func (e *env) payment(s checkout.Session, amount string, asset checkout.Asset, closedAt time.Time) checkout.Payment {
	op := e.opSeq.Add(1)
	return checkout.Payment{
		OperationID:     strconv.FormatInt(100<<32+op, 10),
		TransactionHash: fmt.Sprintf("%064x", op),
		OperationType:   "payment",
		From:            keypair.MustRandom().Address(),
		To:              s.ReceivingAccount,
		Amount:          mustAmount(e.t, amount),
		Asset:           asset,
		MemoType:        "text",
		Memo:            s.Memo,
		LedgerClosedAt:  closedAt.UTC().Truncate(time.Second),
	}
}

func (e *env) load(id string) checkout.Session {
	e.t.Helper()
	s, err := e.db.GetSession(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// count runs a counting query.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.sql.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func mustAmount(t *testing.T, s string) checkout.Amount {
	t.Helper()
	a, err := checkout.ParseAmount(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func usdc(t *testing.T) checkout.Asset {
	t.Helper()
	return checkout.Asset{Code: "USDC", Issuer: keypair.MustRandom().Address()}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
