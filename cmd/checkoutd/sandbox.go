package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/stellar/go-stellar-sdk/network"
)

// runSandbox serves the sandbox Stellar network until ctx is done.
// A --ledger-close of 0 closes a ledger after every transaction.
func runSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8000", "listen address")
	passphrase := fs.String("passphrase", network.TestNetworkPassphrase, "network passphrase")
	ledgerClose := fs.Duration("ledger-close", sandbox.DefaultLedgerClose, "ledger close interval (0: after every transaction)")
	seed := fs.Uint64("seed", 1, "seed of the fault schedule")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("sandbox flags: %w", err)
	}
	if *ledgerClose < 0 {
		return fmt.Errorf("sandbox flags: --ledger-close %s must not be negative", *ledgerClose)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := sandbox.Config{
		NetworkPassphrase:    *passphrase,
		LedgerClose:          *ledgerClose,
		CloseEachTransaction: *ledgerClose == 0,
		Seed:                 *seed,
		Logger:               logger,
	}
	sb, err := sandbox.New(cfg)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer sb.Close()
	if err := sb.Start(ctx); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sandbox listen: %w", err)
	}
	srv := &http.Server{
		Handler:           sb.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Longer than a submission's wait for its ledger; streams clear
		// their own write deadline.
		WriteTimeout: sandbox.DefaultSubmitTimeout + 30*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Streams never go idle, so end them when shutdown begins.
	srv.RegisterOnShutdown(func() { _ = sb.Close() })
	fmt.Fprintf(stdout, "sandbox Stellar network on http://%s (passphrase %q)\n", ln.Addr(), *passphrase)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sandbox serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("sandbox shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sandbox serve: %w", err)
	}
	return nil
}
