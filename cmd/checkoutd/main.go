// Command checkoutd is a payment processor for merchants who take payments
// on the Stellar network. main only wires: each subcommand parses its flags
// (with environment twins) and runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped by `make build` from git.
var version = "dev"

const usage = `checkoutd: Stellar checkout sessions, settled exactly once.

Usage:
  checkoutd serve        run the API, the actors and the ledger watchers
  checkoutd migrate      apply the database migrations
  checkoutd merchant     manage merchants and their API keys
  checkoutd sandbox      run the offline sandbox Stellar network
  checkoutd dev          run everything on this machine, for trying it out
  checkoutd healthcheck  exit 0 if checkoutd answers (a container's HEALTHCHECK)
  checkoutd version      print the version

Run 'checkoutd COMMAND --help' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(*usageError)):
		fmt.Fprintln(os.Stderr, "checkoutd:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "checkoutd:", err)
		os.Exit(1)
	}
}

// usageError is a bad command line or configuration: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, stdout, stderr)
	case "sandbox":
		return runSandbox(ctx, rest, stdout, stderr)
	case "merchant":
		return runMerchant(ctx, rest, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usagef("unknown command %q", cmd)
	}
}
