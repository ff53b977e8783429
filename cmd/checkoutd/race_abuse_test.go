//go:build race

package main

// raceEnabled: the race detector allows at most 8,128 live goroutines, so
// the connection floods stay below that under -race.
const raceEnabled = true
