package actors

import (
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
)

// TestMailboxGauge checks that the mailbox middleware reports queued
// messages while an actor is busy, nothing once they are handled, and
// forgets an actor that stopped with messages still queued.
func TestMailboxGauge(t *testing.T) {
	g := newMailboxGauge()
	reg := prometheus.NewRegistry()
	reg.MustRegister(g)
	system := actor.NewActorSystem()
	defer system.Shutdown()

	release := make(chan struct{})
	handled := make(chan struct{}, 16)
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(string); ok {
			<-release
			handled <- struct{}{}
		}
	}, actor.WithMailbox(g.mailbox("session")))
	pid := system.Root.Spawn(props)
	for range 4 {
		system.Root.Send(pid, "work")
	}
	// One message is being handled (blocked); three wait.
	eventually(t, "3 queued", func() bool { return gaugeValue(t, reg, `checkoutd_actor_mailbox_length{actor="session"}`) == 3 })
	if v := gaugeValue(t, reg, `checkoutd_actor_mailbox_length_max{actor="session"}`); v != 3 {
		t.Errorf("max %v, want 3", v)
	}
	for range 4 {
		release <- struct{}{}
		<-handled
	}
	eventually(t, "none queued", func() bool { return gaugeValue(t, reg, `checkoutd_actor_mailbox_length{actor="session"}`) == 0 })

	// Stopped with messages queued: they are dropped, and so is the actor.
	for range 3 {
		system.Root.Send(pid, "work")
	}
	system.Root.Stop(pid)
	close(release)
	eventually(t, "the stopped actor forgotten", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.live) == 0
	})
	if v := gaugeValue(t, reg, `checkoutd_actor_mailbox_length{actor="session"}`); v != 0 {
		t.Errorf("after stop: %v queued", v)
	}
	if v := gaugeValue(t, reg, `checkoutd_actor_mailbox_length{actor="supervisor"}`); v != 0 {
		t.Errorf("supervisor: %v", v)
	}
}

// gaugeValue reads one series, named as in the exposition format.
func gaugeValue(t *testing.T, reg *prometheus.Registry, series string) float64 {
	t.Helper()
	name, _, _ := strings.Cut(series, "{")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if name+"{"+strings.Join(labels, ",")+"}" == series {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// eventually waits up to 5 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
