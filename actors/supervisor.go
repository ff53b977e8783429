package actors

import (
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	checkout "github.com/checkoutd/checkoutd"
)

// supervisor owns every session actor. It activates a session on first use,
// restarts a failed one after a backoff, stops one that keeps failing, and
// passivates idle ones without losing a message.
//
// Passivation is a protocol because protoactor silently drops messages
// queued behind a stop: the supervisor marks the child as stopping and
// poisons it, so everything it forwarded earlier is handled first; anything
// for that session arriving afterwards is held here until the child has
// terminated, then handed to a fresh activation. So one session never has two
// live actors on this node, and no message is lost.
type supervisor struct {
	cfg    *Config
	logger *slog.Logger
	self   *actor.PID
	// sup is this actor's own context as protoactor hands it to
	// HandleFailure, kept to restart children from a timer message; it is
	// used only inside this actor's message handling.
	sup actor.Supervisor

	children map[string]*child // by session id
	byPID    map[string]string // child PID id to session id
	active   *atomic.Int64
	restarts *atomic.Int64

	// drainedTo is who asked for a drain; once set, nothing is activated.
	drainedTo *actor.PID
}

type child struct {
	pid            *actor.PID
	stopping       bool
	restartPending bool
	failures       []time.Time
	held           []heldMessage
}

type heldMessage struct {
	msg    any
	sender *actor.PID
}

func newSupervisor(cfg *Config, active, restarts *atomic.Int64) *supervisor {
	return &supervisor{
		cfg: cfg, logger: cfg.Logger.With("actor", "supervisor"),
		children: make(map[string]*child), byPID: make(map[string]string),
		active: active, restarts: restarts,
	}
}

// Receive only dispatches.
func (s *supervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.self = ctx.Self()
	case *actor.Stopping, *actor.Stopped, *actor.Restarting:
	case deliver:
		s.route(ctx, m)
	case *passivate:
		s.passivate(ctx, m)
	case *actor.Terminated:
		s.terminated(ctx, m)
	case *restartChild:
		s.restart(m)
	case *drain:
		s.drain(ctx)
	}
}

func (s *supervisor) route(ctx actor.Context, m deliver) {
	c, ok := s.children[m.sessionID]
	if !ok && s.drainedTo != nil {
		ctx.Respond(errShuttingDown(m.msg))
		return
	}
	if !ok {
		c = s.activate(ctx, m.sessionID)
	}
	if c.stopping {
		c.held = append(c.held, heldMessage{msg: m.msg, sender: ctx.Sender()})
		return
	}
	ctx.RequestWithCustomSender(c.pid, m.msg, ctx.Sender())
}

func (s *supervisor) activate(ctx actor.Context, id string) *child {
	props := actor.PropsFromProducer(func() actor.Actor { return newSessionActor(id, s.cfg) },
		actor.WithMailbox(s.cfg.mailboxes.mailbox("session")))
	pid := ctx.SpawnPrefix(props, "session-"+id)
	c := &child{pid: pid}
	s.children[id] = c
	s.byPID[pid.Id] = id
	s.active.Store(int64(len(s.children)))
	return c
}

func (s *supervisor) passivate(ctx actor.Context, m *passivate) {
	c, ok := s.children[m.sessionID]
	if !ok || !c.pid.Equal(m.pid) || c.stopping || c.restartPending {
		return
	}
	c.stopping = true
	ctx.Poison(c.pid)
}

func (s *supervisor) terminated(ctx actor.Context, m *actor.Terminated) {
	id, ok := s.byPID[m.Who.Id]
	if !ok {
		return
	}
	delete(s.byPID, m.Who.Id)
	c := s.children[id]
	if c == nil || !c.pid.Equal(m.Who) {
		return
	}
	delete(s.children, id)
	switch {
	case s.drainedTo != nil:
		for _, h := range c.held {
			ctx.Send(h.sender, errShuttingDown(h.msg))
		}
		if len(s.children) == 0 {
			ctx.Send(s.drainedTo, &drained{})
		}
	case len(c.held) > 0:
		// Messages arrived while the old activation was stopping: a fresh
		// activation takes them, in the order they came.
		next := s.activate(ctx, id)
		for _, h := range c.held {
			ctx.RequestWithCustomSender(next.pid, h.msg, h.sender)
		}
	}
	s.active.Store(int64(len(s.children)))
}

// HandleFailure makes the supervisor its children's supervision strategy:
// one-for-one, restarting after an exponential backoff with jitter, and
// stopping a child that fails more than MaxRestarts times in RestartWindow.
// The message that made the child fail is lost (protoactor pops it before
// invoking); the child rehydrates from Postgres, and the sender retries.
func (s *supervisor) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, who *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	s.sup = sup
	id, ok := s.byPID[who.Id]
	c := s.children[id]
	if !ok || c == nil {
		sup.StopChildren(who)
		return
	}
	s.restarts.Add(1)
	now := time.Now()
	recent := c.failures[:0]
	for _, t := range c.failures {
		if now.Sub(t) < s.cfg.RestartWindow {
			recent = append(recent, t)
		}
	}
	c.failures = append(recent, now)
	logger := s.logger.With("session_id", id, "reason", reason, "failures", len(c.failures))
	if len(c.failures) > s.cfg.MaxRestarts {
		logger.Error("session actor keeps failing; stopping it")
		c.stopping = true
		sup.StopChildren(who)
		return
	}
	delay := s.cfg.RestartBackoff << (len(c.failures) - 1)
	if delay > s.cfg.MaxRestartBackoff || delay <= 0 {
		delay = s.cfg.MaxRestartBackoff
	}
	delay += rand.N(delay/2 + 1)
	logger.Warn("session actor failed; restarting after backoff", "backoff", delay)
	c.restartPending = true
	self := s.self
	time.AfterFunc(delay, func() { system.Root.Send(self, &restartChild{sessionID: id}) })
}

func (s *supervisor) restart(m *restartChild) {
	c, ok := s.children[m.sessionID]
	if !ok || !c.restartPending {
		return
	}
	c.restartPending = false
	s.sup.RestartChildren(c.pid)
}

// drain poisons every child, so each finishes what it was sent, and answers
// the sender once all have terminated.
func (s *supervisor) drain(ctx actor.Context) {
	s.drainedTo = ctx.Sender()
	if len(s.children) == 0 {
		ctx.Respond(&drained{})
		return
	}
	for _, c := range s.children {
		if !c.stopping {
			c.stopping = true
			ctx.Poison(c.pid)
		}
	}
}

// errShuttingDown is the reply to a message that arrives during a drain.
func errShuttingDown(msg any) any {
	err := &checkout.Error{Code: checkout.EINTERNAL, Reason: "shutting_down", Message: "checkoutd is shutting down"}
	if _, ok := msg.(*ObservePayment); ok {
		return &PaymentReply{Err: err}
	}
	return &SessionReply{Err: err}
}
