package actors

import "github.com/checkoutd/checkoutd/persistence"

// The delivery engine's messages. They never leave the engine.

// wakeDeliveries asks the dispatcher to claim due deliveries now: a
// notification arrived, or a test or a redelivery asked.
type wakeDeliveries struct{}

// pollDeliveries is the dispatcher's timer: claim what came due, and stop
// idle workers.
type pollDeliveries struct{}

// deliveryJob hands a claimed delivery to its endpoint's worker.
type deliveryJob struct {
	claim persistence.ClaimedDelivery
}

// attemptSent tells a worker, and then the dispatcher, that a job no
// longer takes one of its endpoint's slots: its response is in (its result
// is being recorded), or it was never sent.
type attemptSent struct {
	endpointID string
}

// attemptDone tells a worker, and then the dispatcher, that a job is
// resolved: recorded, or put aside. Its attemptSent came first.
type attemptDone struct {
	endpointID string
}

// stopClaiming asks the dispatcher to stop claiming and listening. The
// reply is a *claimingStopped.
type stopClaiming struct{}

// claimingStopped answers stopClaiming.
type claimingStopped struct{}
