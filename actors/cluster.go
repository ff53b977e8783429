package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	clientv3 "go.etcd.io/etcd/client/v3"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors/clusterpb"
)

// ClusterConfig makes the actor system a member of a protoactor cluster, in
// which every session is a grain placed by its id (disthash). Nil in Config:
// a single node, whose supervisor owns every session.
type ClusterConfig struct {
	// Name is the cluster's name; nodes with the same name and provider
	// form one cluster. Required.
	Name string
	// Provider tracks the members: EtcdProvider, or protoactor's test
	// provider in tests. Required.
	Provider cluster.ClusterProvider
	// Host and Port are where this node's remote (gRPC) listens, and what it
	// advertises to the others. Required.
	Host string
	Port int
	// Etcd, when set, is a client of the etcd that Provider keeps the
	// members in. The node reads its own member key through it every
	// leaseCheck; once the key has expired, or etcd has not answered for
	// unreachableLimit, the others have taken its sessions over, so
	// System.Lost is closed and the node must stop (watchLease). Start owns it: Stop closes it, and so does a
	// failure to join. Nil (the
	// test provider): membership is never lost.
	Etcd *clientv3.Client
}

// A node checks its membership every leaseCheck, each read bounded by
// leaseRead, and gives up once it has not reached etcd for
// unreachableLimit. protoactor's etcd provider keeps a member for 3 s after
// its last keep-alive, so by then the lease of a node cut off from etcd has
// long expired; the margin is for a machine so busy that etcd answers late.
const (
	leaseCheck       = 500 * time.Millisecond
	leaseRead        = 2 * time.Second
	unreachableLimit = 10 * time.Second
)

// etcdPrefix is where the members are kept in etcd.
const etcdPrefix = "/checkoutd"

// EtcdProvider returns a cluster provider keeping the members in etcd under
// /checkoutd, whose lease on a member lasts 3 s after its last keep-alive,
// and a client of the same etcd for ClusterConfig.Etcd.
func EtcdProvider(endpoints []string) (cluster.ClusterProvider, *clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second}
	p, err := etcd.NewWithConfig(etcdPrefix, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd cluster provider: %w", err)
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd client: %w", err)
	}
	return p, c, nil
}

// memberKey is the etcd key protoactor's etcd provider registers a member
// under: <prefix>/<cluster>/<cluster>@<actor system id>.
func memberKey(clusterName, systemID string) string {
	return etcdPrefix + "/" + clusterName + "/" + clusterName + "@" + systemID
}

// watchLease closes lost once this node has lost its membership: its key
// is gone from etcd or was created again (its lease expired, so the other
// members removed it, and protoactor's provider then never counts this
// node among the members again), or etcd has not answered a quorum read
// for unreachableLimit (a node cut off from etcd, whose lease the others
// have seen expire). It returns when lost is closed or quit is.
func watchLease(client *clientv3.Client, key string, lost, quit chan struct{}, logger *slog.Logger) {
	last := time.Now()
	var created int64
	t := time.NewTicker(leaseCheck)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), leaseRead)
		resp, err := client.Get(ctx, key)
		cancel()
		switch {
		case err != nil:
			if since := time.Since(last); since >= unreachableLimit {
				logger.Error("etcd unreachable: this node has left the cluster and stops",
					"unreachable_for", since.Round(time.Millisecond), "err", err)
				close(lost)
				return
			}
		case len(resp.Kvs) == 0 || created != 0 && resp.Kvs[0].CreateRevision != created:
			logger.Error("this node's membership lease expired: it has left the cluster and stops", "key", key)
			close(lost)
			return
		default:
			created = resp.Kvs[0].CreateRevision
			last = time.Now()
		}
	}
}

// startCluster joins the cluster, whose session grains count themselves in
// active and their failures in restarts.
func startCluster(as *actor.ActorSystem, cfg *Config, active, restarts *atomic.Int64) (c *cluster.Cluster, err error) {
	cc := cfg.Cluster
	if cc.Name == "" || cc.Provider == nil || cc.Host == "" || cc.Port <= 0 {
		return nil, errors.New("actors cluster config: name, provider, host and port are required")
	}
	kind := cluster.NewKind(sessionGrainKind, actor.PropsFromProducer(func() actor.Actor { return &sessionGrain{cfg: cfg, active: active, restarts: restarts} },
		actor.WithMailbox(cfg.mailboxes.mailbox("session"))))
	ccfg := cluster.Configure(cc.Name, cc.Provider, disthash.New(), remote.Configure(cc.Host, cc.Port),
		cluster.WithKinds(kind), cluster.WithRequestTimeout(cfg.AskTimeout))
	c = cluster.New(as, ccfg)
	defer func() {
		// StartMember panics when the provider cannot register the member.
		if r := recover(); r != nil {
			err = fmt.Errorf("join cluster %s: %v", cc.Name, r)
		}
	}()
	c.StartMember()
	return c, nil
}

// clusterSessions reaches the session grains, wherever the cluster placed
// them. Requests from this node to one grain travel in order over one
// connection, so payments observed one after another are applied in order.
type clusterSessions struct {
	cluster *cluster.Cluster
	timeout time.Duration
}

func (s *clusterSessions) Observe(sessionID string, p checkout.Payment, receivedAt time.Time) *PendingPayment {
	msg := &clusterpb.ObservePayment{Payment: paymentToProto(p), ReceivedAtUnixNano: timeToProto(receivedAt)}
	// RequestFuture, unlike Request, does not wait for the reply, which keeps
	// the hand-off ordered; it takes no options, because protoactor shares
	// one default option set among all callers and options would change it.
	send := func() (*actor.Future, error) {
		f, err := s.cluster.RequestFuture(sessionID, sessionGrainKind, msg)
		if err != nil {
			return nil, fmt.Errorf("session %s: %w", sessionID, err)
		}
		return f, nil
	}
	f, err := send()
	if err != nil {
		return &PendingPayment{err: err}
	}
	return &PendingPayment{future: f, resend: func() (*actor.Future, error) {
		s.cluster.PidCache.Remove(sessionID, sessionGrainKind)
		return send()
	}}
}

func (s *clusterSessions) Get(sessionID string) (checkout.Session, error) {
	return s.ask(sessionID, &clusterpb.GetSession{})
}

func (s *clusterSessions) Cancel(sessionID string) (checkout.Session, error) {
	return s.ask(sessionID, &clusterpb.CancelSession{})
}

func (s *clusterSessions) Expire(sessionID string, at time.Time) (checkout.Session, error) {
	return s.ask(sessionID, &clusterpb.ExpireSession{AtUnixNano: timeToProto(at)})
}

func (s *clusterSessions) Repair(sessionID string) (checkout.Session, error) {
	return s.ask(sessionID, &clusterpb.RepairSession{})
}

func (s *clusterSessions) ask(sessionID string, msg any) (checkout.Session, error) {
	// Request retries a dead or timed-out activation, sleeping i*i*50 — in
	// nanoseconds, so effectively at once; give it enough tries to ride out
	// a topology change.
	res, err := s.cluster.Request(sessionID, sessionGrainKind, msg, cluster.WithTimeout(s.timeout),
		cluster.WithRetryCount(20), cluster.WithRetryAction(func(i int) int {
			time.Sleep(time.Duration(i+1) * 50 * time.Millisecond)
			return i + 1
		}))
	if err != nil {
		return checkout.Session{}, fmt.Errorf("session %s: %T: %w", sessionID, msg, err)
	}
	reply, ok := res.(*clusterpb.SessionReply)
	if !ok {
		return checkout.Session{}, fmt.Errorf("session %s: unexpected reply %T", sessionID, res)
	}
	r := sessionReplyFromProto(reply)
	return r.Session, r.Err
}
