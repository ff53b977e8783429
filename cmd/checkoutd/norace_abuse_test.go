//go:build !race

package main

// raceEnabled: see race_abuse_test.go.
const raceEnabled = false
