package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/webhooks"
)

// worker runs the attempts of one endpoint, at most PerEndpoint requests
// at once; more wait in its queue. Each attempt runs in a goroutine the
// worker starts and the engine's job count tracks; it reports back with
// attemptSent when its request is over, which frees its slot, and with
// attemptDone when its result is recorded.
type worker struct {
	engine     *DeliveryEngine
	cfg        *DeliveryConfig
	endpointID string
	logger     *slog.Logger

	sending int
	queue   []persistence.ClaimedDelivery
}

func newEndpointWorker(e *DeliveryEngine, endpointID string) *worker {
	return &worker{engine: e, cfg: &e.cfg, endpointID: endpointID,
		logger: e.cfg.Logger.With("actor", "webhook-worker", "endpoint_id", endpointID)}
}

// Receive only dispatches.
func (w *worker) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
	case *deliveryJob:
		w.queue = append(w.queue, m.claim)
		w.startQueued(ctx)
	case *attemptSent:
		w.sending--
		ctx.Send(ctx.Parent(), m)
		w.startQueued(ctx)
	case *attemptDone:
		ctx.Send(ctx.Parent(), m)
	}
}

func (w *worker) startQueued(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	for w.sending < w.cfg.PerEndpoint && len(w.queue) > 0 {
		c := w.queue[0]
		w.queue = w.queue[1:]
		w.sending++
		go func() {
			sent := false
			freeSlot := func() {
				if !sent {
					sent = true
					root.Send(self, &attemptSent{endpointID: w.endpointID})
				}
			}
			defer func() {
				w.engine.jobs.Done()
				freeSlot()
				root.Send(self, &attemptDone{endpointID: w.endpointID})
			}()
			if w.engine.stopping.Load() {
				w.engine.giveBack(c)
				return
			}
			w.engine.attempt(w.logger, c, freeSlot)
		}()
	}
}

// attempt sends one delivery, calls sent once the request is over, and
// records the outcome.
func (e *DeliveryEngine) attempt(logger *slog.Logger, c persistence.ClaimedDelivery, sent func()) {
	now := e.cfg.Clock()
	// A claim that waited in the queue may be too close to its lease's end
	// for a whole attempt: another engine could claim and send it while
	// this one is still sending. Left alone, it lapses and is sent once.
	if !c.ClaimedUntil.IsZero() && now.Add(e.cfg.AttemptTimeout).After(c.ClaimedUntil) {
		e.stats.Stale.Add(1)
		logger.Warn("webhook claim too close to its lease's end to attempt; left to lapse",
			"delivery_id", c.ID, "claimed_until", c.ClaimedUntil)
		return
	}
	a := persistence.WebhookAttempt{DeliveryID: c.ID, AttemptedAt: now}
	start := time.Now()
	if err := e.send(c, now, &a); err != nil {
		a.Error = err.Error()
	}
	a.Latency = time.Since(start)
	sent()
	if e.cfg.Hooks.AfterSend != nil && !e.cfg.Hooks.AfterSend(c) {
		return
	}

	r := persistence.AttemptResult{Delivery: c, Attempt: a, DisableAfter: e.cfg.DisableAfter}
	if !a.Succeeded {
		first := c.FirstAttemptAt
		if first.IsZero() {
			first = now
		}
		if next, ok := e.cfg.Backoff.Next(c.Attempts+1, first, now); ok {
			r.NextAttemptAt = next
		}
	}
	out, err := e.record(r)
	e.stats.Attempts.Add(1)
	e.metrics.attempted(a.Latency, err == nil)
	if err != nil {
		// The claim lapses and the delivery is tried again.
		logger.Error("record webhook attempt", "delivery_id", c.ID, "err", err)
		return
	}
	switch {
	case out.Stale:
		e.stats.Stale.Add(1)
	case a.Succeeded:
		e.stats.Succeeded.Add(1)
	case out.Status == persistence.DeliveryFailed:
		e.stats.Failed.Add(1)
		logger.Warn("webhook delivery failed for good", "delivery_id", c.ID, "event_id", c.Event.ID,
			"attempts", c.Attempts+1, "err", a.Error)
	default:
		e.stats.Retrying.Add(1)
		logger.Debug("webhook attempt failed", "delivery_id", c.ID, "status", a.StatusCode, "err", a.Error,
			"next_attempt_at", r.NextAttemptAt)
	}
	if out.Disabled {
		e.stats.Disabled.Add(1)
		logger.Warn("webhook endpoint disabled after failing continuously", "after", e.cfg.DisableAfter,
			"event_id", out.DisabledEventID)
	}
}

// send makes the HTTP request and fills in the response. The error it
// returns is stored and shown to the merchant: it names neither secrets nor
// the URL.
func (e *DeliveryEngine) send(c persistence.ClaimedDelivery, now time.Time, a *persistence.WebhookAttempt) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error rendering the webhook")
			e.cfg.Logger.Error("webhook attempt panicked", "delivery_id", c.ID, "panic", p)
		}
	}()
	data, err := e.cfg.Render(c.Event)
	if err != nil {
		e.cfg.Logger.Error("render webhook", "event_id", c.Event.ID, "err", err)
		return errors.New("internal error rendering the webhook")
	}
	body, err := webhooks.Body(string(c.Event.Type), c.Event.CreatedAt, data)
	if err != nil {
		e.cfg.Logger.Error("render webhook", "event_id", c.Event.ID, "err", err)
		return errors.New("internal error rendering the webhook")
	}
	ctx, cancel := context.WithTimeout(e.attemptCtx, e.cfg.AttemptTimeout)
	defer cancel()
	req, err := webhooks.NewRequest(ctx, c.Endpoint.URL, c.Event.ID, now, body, c.Endpoint.SigningSecrets(now)...)
	if err != nil {
		e.cfg.Logger.Error("build webhook request", "delivery_id", c.ID, "err", err)
		return errors.New("internal error building the webhook request")
	}
	resp, err := e.cfg.Client.Do(req)
	if err != nil {
		return describeSendError(ctx, err, e.cfg.AttemptTimeout)
	}
	defer resp.Body.Close()
	a.StatusCode = resp.StatusCode
	head, _ := io.ReadAll(io.LimitReader(resp.Body, persistence.MaxResponseBody))
	a.ResponseBody = string(head)
	// Read a little more so the connection can be reused; a receiver that
	// sends more than that loses its connection.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %d %s", resp.StatusCode, httpStatusText(resp.StatusCode))
	}
	a.Succeeded = true
	return nil
}

func httpStatusText(code int) string {
	switch {
	case code >= 300 && code < 400:
		return "(redirects are not followed)"
	default:
		return ""
	}
}

// describeSendError says why no response came, without the URL.
func describeSendError(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timeout: no response within %s", timeout)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("timeout: no response within %s", timeout)
	}
	if errors.Is(err, webhooks.ErrForbiddenAddress) {
		return fmt.Errorf("refused: the endpoint resolves to an internal address")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("send failed: %w", ue.Err)
	}
	return fmt.Errorf("send failed: %w", err)
}
