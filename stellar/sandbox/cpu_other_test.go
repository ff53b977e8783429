//go:build !unix

package sandbox_test

import "time"

// processCPU is unknown here; the benchmarks then skip their CPU metric.
func processCPU() time.Duration { return -1 }
