// Package chaos is checkoutd's fault-injection suite. It runs the real
// checkoutd binary (and, for faults that need a hook inside the process, the
// real actors wired as serve wires them) against a sandbox Stellar network
// in its own process and a Postgres cluster of its own, drives it with
// sessions and real signed payments, injects one kind of fault per scenario,
// waits for quiescence and then checks the money invariants over the final
// state with one checker (invariants.go).
//
// Every scenario takes a seed and logs it; the same seed replays the same
// fault schedule (which faults, when, and for how long). Everything listens
// on 127.0.0.1 only, every run is bounded in count and time, and every child
// process runs in its own process group and is killed when its test ends.
//
// The suite is `make chaos` (CI-sized, at most 5 minutes) and `make soak`
// (SOAK_DURATION long). See docs/reliability.md.
package chaos
