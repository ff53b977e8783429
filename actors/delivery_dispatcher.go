package actors

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/checkoutd/checkoutd/persistence"
)

// dispatcher claims due deliveries and routes each to its endpoint's worker,
// a child it spawns on demand and stops when idle. It is woken by
// LISTEN/NOTIFY (through a listener goroutine it owns), by its poll timer,
// and by finished attempts when the last claim ran out of room.
type dispatcher struct {
	engine *DeliveryEngine
	cfg    *DeliveryConfig
	logger *slog.Logger

	workers map[string]*endpointWorker // by endpoint id
	// inFlight counts this engine's unresolved jobs.
	inFlight int
	// more is set when the last claim may have left due deliveries behind:
	// it filled its room, or an endpoint reached its limit. Then an attempt
	// that is sent or resolved claims again; otherwise only a notification or the poll does,
	// so an idle engine does not query after every attempt.
	more bool
	// claimQueued is set while a wakeDeliveries is in the mailbox, so a
	// burst of wake-ups costs one claim.
	claimQueued atomic.Bool
	stopped     bool

	timer          *time.Timer
	stopListener   context.CancelFunc
	listenerExited sync.WaitGroup
}

// endpointWorker is the dispatcher's record of one worker child.
type endpointWorker struct {
	pid  *actor.PID
	jobs int // handed to the worker and not resolved
	// unsent counts the jobs that are queued in the worker or being sent:
	// the claims of the endpoint that the per-endpoint limit counts.
	unsent   int
	lastUsed time.Time
}

func newDispatcher(e *DeliveryEngine) *dispatcher {
	return &dispatcher{engine: e, cfg: &e.cfg, logger: e.cfg.Logger.With("actor", "webhook-dispatcher"),
		workers: make(map[string]*endpointWorker)}
}

// Receive only dispatches.
func (d *dispatcher) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		d.start(ctx)
	case *actor.Stopping:
		d.stop()
	case *actor.Stopped, *actor.Restarting:
	case *wakeDeliveries:
		d.claimQueued.Store(false)
		d.claim(ctx)
	case *pollDeliveries:
		d.claim(ctx)
		d.passivateIdle(ctx)
		d.schedule(ctx)
	case *attemptSent:
		d.sent(ctx, m)
	case *attemptDone:
		d.done(ctx, m)
	case *stopClaiming:
		d.stop()
		ctx.Respond(&claimingStopped{})
	}
}

func (d *dispatcher) start(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	wake := func() { d.wakeSoon(root, self) }
	lctx, cancel := context.WithCancel(context.Background())
	d.stopListener = cancel
	d.listenerExited.Add(1)
	go d.listen(lctx, wake)
	d.schedule(ctx)
}

// listen keeps a LISTEN connection open until ctx ends, reconnecting with
// a backoff when it fails. Polling covers the gaps.
func (d *dispatcher) listen(ctx context.Context, wake func()) {
	defer d.listenerExited.Done()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		err := d.cfg.Store.ListenDeliveries(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		d.logger.Warn("webhook notifications lost; polling until they are back", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (d *dispatcher) schedule(ctx actor.Context) {
	if d.stopped {
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	d.timer = time.AfterFunc(d.cfg.PollInterval, func() { root.Send(self, &pollDeliveries{}) })
}

func (d *dispatcher) stop() {
	if d.stopped {
		return
	}
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
	if d.stopListener != nil {
		d.stopListener()
		d.listenerExited.Wait()
	}
}

// claim claims as many due deliveries as there is room for and hands them
// out.
func (d *dispatcher) claim(ctx actor.Context) {
	if d.stopped {
		return
	}
	room := min(d.cfg.ClaimBatch, d.cfg.MaxInFlight-d.inFlight)
	if room <= 0 {
		d.more = true // a finished attempt claims again
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), d.cfg.StoreTimeout)
	began := time.Now()
	inFlight := make(map[string]int, len(d.workers))
	for id, w := range d.workers {
		if w.unsent > 0 {
			inFlight[id] = w.unsent
		}
	}
	claims, err := d.cfg.Store.ClaimDeliveries(cctx, persistence.ClaimParams{Now: d.cfg.Clock(), Lease: d.cfg.Lease,
		Limit: room, PerEndpoint: d.perEndpointHeld(), InFlight: inFlight})
	cancel()
	d.logger.Debug("claimed webhook deliveries", "claimed", len(claims), "room", room, "took", time.Since(began))
	if err != nil {
		d.logger.Warn("claim webhook deliveries", "err", err)
		return
	}
	now := time.Now()
	for _, c := range claims {
		w := d.workers[c.Endpoint.ID]
		if w == nil {
			w = &endpointWorker{pid: ctx.Spawn(actor.PropsFromProducer(func() actor.Actor {
				return newEndpointWorker(d.engine, c.Endpoint.ID)
			}))}
			d.workers[c.Endpoint.ID] = w
		}
		w.jobs++
		w.unsent++
		w.lastUsed = now
		d.inFlight++
		d.engine.jobs.Add(1)
		d.engine.stats.Claimed.Add(1)
		ctx.Send(w.pid, &deliveryJob{claim: c})
	}
	d.more = false
	for _, w := range d.workers {
		if w.unsent >= d.perEndpointHeld() {
			d.more = true
			break
		}
	}
	if len(claims) == room {
		d.more = true
		if d.claimQueued.CompareAndSwap(false, true) {
			ctx.Send(ctx.Self(), &wakeDeliveries{}) // there may be more: at once
		}
	}
}

// perEndpointHeld is how many unsent claims of one endpoint the engine
// holds at most: PerEndpoint being sent and as many queued behind them,
// so a freed slot is filled at once while the next claim is made. A queued
// claim waits for at most one attempt of those before it, well within its
// lease.
func (d *dispatcher) perEndpointHeld() int { return 2 * d.cfg.PerEndpoint }

// wakeSoon asks for a claim ClaimDelay from now, unless one is already
// asked for: the notifications and finished attempts of that moment then
// share one claim. Safe from any goroutine.
func (d *dispatcher) wakeSoon(root *actor.RootContext, self *actor.PID) {
	if d.claimQueued.CompareAndSwap(false, true) {
		time.AfterFunc(d.cfg.ClaimDelay, func() { root.Send(self, &wakeDeliveries{}) })
	}
}

// sent records that a job no longer counts against its endpoint's limit
// and, when the last claim may have left work behind, claims again: the
// slot it frees may be what held due deliveries back. Claims are coalesced
// (wakeSoon), so a burst of completions costs one.
func (d *dispatcher) sent(ctx actor.Context, m *attemptSent) {
	if w := d.workers[m.endpointID]; w != nil {
		w.unsent--
	}
	if d.more {
		d.wakeSoon(ctx.ActorSystem().Root, ctx.Self())
	}
}

// done records a resolved job and, as sent does, claims again when the
// room it frees in the engine may be what held due deliveries back.
func (d *dispatcher) done(ctx actor.Context, m *attemptDone) {
	d.inFlight--
	if w := d.workers[m.endpointID]; w != nil {
		w.jobs--
		w.lastUsed = time.Now()
	}
	if d.more {
		d.wakeSoon(ctx.ActorSystem().Root, ctx.Self())
	}
}

// passivateIdle stops workers that have had nothing to do for WorkerIdle.
// Only the dispatcher sends jobs to a worker, so one with no job counted
// has none in its mailbox either, and stopping it loses nothing. Workers
// are spawned without names, so a new one for the same endpoint never
// collides with one still stopping.
func (d *dispatcher) passivateIdle(ctx actor.Context) {
	cutoff := time.Now().Add(-d.cfg.WorkerIdle)
	for id, w := range d.workers {
		if w.jobs == 0 && w.lastUsed.Before(cutoff) {
			delete(d.workers, id)
			ctx.Stop(w.pid)
		}
	}
}
