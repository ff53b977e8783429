// Command loadgen drives a running checkoutd and its sandbox Stellar
// network over real HTTP, the way a merchant and many customers would: it
// creates checkout sessions through the API, pays them with real signed
// sandbox transactions, receives and verifies the signed webhooks, measures
// latencies with HDR histograms and checks at the end that every session
// ended as its kind of payment says it must. See docs/loadgen.md.
//
// main only wires: parseFlags reads the command line and the environment,
// run does the work, so a test can run the real program in-process.
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

// Exit codes: 1 means the run found violations (or could not finish), 2 a
// bad command line or an environment loadgen cannot work in.
const (
	exitViolations = 1
	exitUsage      = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(*usageError)):
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(exitUsage)
	default:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(exitViolations)
	}
}

// usageError is a bad command line or setup: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errViolations is returned when the run completed but its final check
// found violations; they have been printed already.
var errViolations = errors.New("the run found violations (listed above)")

// run parses args, drives the load, prints the summary and returns
// errViolations if the final check failed.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	res, err := drive(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if err := writeOutputs(cfg, res, stdout, stderr); err != nil {
		return err
	}
	if len(res.Violations) > 0 {
		return errViolations
	}
	return nil
}
