package actors

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors/clusterpb"
)

// sessionGrainKind is the cluster kind of session grains.
const sessionGrainKind = "session"

// sessionGrain is a session as a cluster grain: the same sessionActor, whose
// identity the cluster names in ClusterInit, with protobuf messages
// converted to the actor's own at the boundary. The cluster places it by
// session id; during a topology change two nodes may briefly hold one, and
// persistence.Settle's version check makes the loser reload.
type sessionGrain struct {
	cfg   *Config
	inner *sessionActor
	// active and restarts are the System's counts of session actors in
	// memory and of their failures, which the supervisor keeps on a single
	// node.
	active, restarts *atomic.Int64
}

// Receive only dispatches.
func (g *sessionGrain) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		// ClusterInit follows at once and names the session.
		g.active.Add(1)
	case *cluster.ClusterInit:
		g.init(ctx, m)
	case *actor.Restarting:
		// A new instance of the grain starts in this one's place.
		g.active.Add(-1)
		g.restarts.Add(1)
		g.stopIdleTimer()
	case *actor.Stopping:
		g.stopIdleTimer()
	case *actor.Stopped:
		g.active.Add(-1)
	case *idleCheck:
		if g.inner != nil {
			g.inner.idle(ctx)
		}
	default:
		g.handle(ctx, m)
	}
}

func (g *sessionGrain) stopIdleTimer() {
	if g.inner != nil {
		g.inner.stopIdleTimer()
	}
}

func (g *sessionGrain) init(ctx actor.Context, m *cluster.ClusterInit) {
	g.inner = newSessionActor(m.Identity.Identity, g.cfg)
	// No supervisor routes to a grain: it stops itself when idle, and the
	// cluster activates it again on the next message. A message queued
	// behind the stop is dropped and its sender's request times out and is
	// retried (the watcher redelivers; Settle absorbs duplicates).
	g.inner.onIdle = func(ctx actor.Context) { ctx.Poison(ctx.Self()) }
	g.inner.started(ctx)
}

func (g *sessionGrain) handle(ctx actor.Context, msg any) {
	if g.inner == nil {
		return
	}
	in := messageFromProto(msg)
	if in == nil {
		return
	}
	g.inner.lastActive = time.Now()
	switch r := g.inner.reply(in).(type) {
	case *PaymentReply:
		ctx.Respond(paymentReplyToProto(r))
	case *SessionReply:
		ctx.Respond(sessionReplyToProto(r))
	}
}

// messageFromProto converts a grain request to the session actor's message,
// or returns nil for an unknown one.
func messageFromProto(msg any) any {
	switch m := msg.(type) {
	case *clusterpb.ObservePayment:
		return &ObservePayment{Payment: paymentFromProto(m.GetPayment()), ReceivedAt: timeFromProto(m.GetReceivedAtUnixNano())}
	case *clusterpb.ExpireSession:
		return &ExpireSession{At: timeFromProto(m.GetAtUnixNano())}
	case *clusterpb.CancelSession:
		return &CancelSession{}
	case *clusterpb.GetSession:
		return &GetSession{}
	case *clusterpb.RepairSession:
		return &RepairSession{}
	}
	return nil
}

func timeToProto(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeFromProto(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func assetToProto(a checkout.Asset) *clusterpb.Asset {
	return &clusterpb.Asset{Code: a.Code, Issuer: a.Issuer}
}

func assetFromProto(a *clusterpb.Asset) checkout.Asset {
	return checkout.Asset{Code: a.GetCode(), Issuer: a.GetIssuer()}
}

func paymentToProto(p checkout.Payment) *clusterpb.Payment {
	return &clusterpb.Payment{
		Id: p.ID, OperationId: p.OperationID, TransactionHash: p.TransactionHash, OperationType: p.OperationType,
		From: p.From, To: p.To, ToMuxedId: p.ToMuxedID, Amount: int64(p.Amount), Asset: assetToProto(p.Asset),
		MemoType: p.MemoType, Memo: p.Memo, LedgerClosedAtUnixNano: timeToProto(p.LedgerClosedAt),
		SessionId: p.SessionID, Disposition: string(p.Disposition), CreatedAtUnixNano: timeToProto(p.CreatedAt),
	}
}

func paymentFromProto(p *clusterpb.Payment) checkout.Payment {
	return checkout.Payment{
		ID: p.GetId(), OperationID: p.GetOperationId(), TransactionHash: p.GetTransactionHash(),
		OperationType: p.GetOperationType(), From: p.GetFrom(), To: p.GetTo(), ToMuxedID: p.GetToMuxedId(),
		Amount: checkout.Amount(p.GetAmount()), Asset: assetFromProto(p.GetAsset()), MemoType: p.GetMemoType(),
		Memo: p.GetMemo(), LedgerClosedAt: timeFromProto(p.GetLedgerClosedAtUnixNano()), SessionID: p.GetSessionId(),
		Disposition: checkout.Disposition(p.GetDisposition()), CreatedAt: timeFromProto(p.GetCreatedAtUnixNano()),
	}
}

func sessionToProto(s checkout.Session) *clusterpb.Session {
	return &clusterpb.Session{
		Id: s.ID, MerchantId: s.MerchantID, Amount: int64(s.Amount), Asset: assetToProto(s.Asset),
		ReceivingAccount: s.ReceivingAccount, MemoType: string(s.MemoType), Memo: s.Memo, Status: string(s.Status),
		PaymentStatus: string(s.PaymentStatus), AmountReceived: int64(s.AmountReceived),
		ExpiresAtUnixNano: timeToProto(s.ExpiresAt), Metadata: s.Metadata, SuccessUrl: s.SuccessURL,
		CancelUrl: s.CancelURL, CreatedAtUnixNano: timeToProto(s.CreatedAt), UpdatedAtUnixNano: timeToProto(s.UpdatedAt),
		ClosedAtUnixNano: timeToProto(s.ClosedAt), Version: s.Version,
	}
}

func sessionFromProto(s *clusterpb.Session) checkout.Session {
	return checkout.Session{
		ID: s.GetId(), MerchantID: s.GetMerchantId(), Amount: checkout.Amount(s.GetAmount()),
		Asset: assetFromProto(s.GetAsset()), ReceivingAccount: s.GetReceivingAccount(),
		MemoType: checkout.MemoType(s.GetMemoType()), Memo: s.GetMemo(), Status: checkout.Status(s.GetStatus()),
		PaymentStatus: checkout.PaymentStatus(s.GetPaymentStatus()), AmountReceived: checkout.Amount(s.GetAmountReceived()),
		ExpiresAt: timeFromProto(s.GetExpiresAtUnixNano()), Metadata: s.GetMetadata(), SuccessURL: s.GetSuccessUrl(),
		CancelURL: s.GetCancelUrl(), CreatedAt: timeFromProto(s.GetCreatedAtUnixNano()),
		UpdatedAt: timeFromProto(s.GetUpdatedAtUnixNano()), ClosedAt: timeFromProto(s.GetClosedAtUnixNano()),
		Version: s.GetVersion(),
	}
}

// sentinel returns the error callers test for with errors.Is that has this
// reason, so that it crosses nodes as itself; nil if none has.
func sentinel(reason string) *checkout.Error {
	for _, e := range []*checkout.Error{checkout.ErrNotFound, checkout.ErrSessionNotOpen, checkout.ErrNotYetExpired,
		checkout.ErrVersionConflict, checkout.ErrAlreadyApplied, checkout.ErrMemoTaken, checkout.ErrAmountOverflow} {
		if e.Reason == reason {
			return e
		}
	}
	return nil
}

func errorToProto(err error) *clusterpb.Error {
	if err == nil {
		return nil
	}
	var ce *checkout.Error
	if errors.As(err, &ce) {
		if s := sentinel(ce.Reason); s != nil && errors.Is(err, s) {
			return &clusterpb.Error{Code: s.Code, Reason: s.Reason, Message: s.Message}
		}
		return &clusterpb.Error{Code: ce.Code, Reason: ce.Reason, Message: ce.Message, Param: ce.Param}
	}
	// Internal causes stay internal to the logs of the node that had them.
	return &clusterpb.Error{Code: checkout.EINTERNAL, Message: err.Error()}
}

func errorFromProto(e *clusterpb.Error) error {
	if e == nil {
		return nil
	}
	if s := sentinel(e.GetReason()); s != nil && e.GetCode() == s.Code {
		return s
	}
	return &checkout.Error{Code: e.GetCode(), Reason: e.GetReason(), Message: e.GetMessage(), Param: e.GetParam()}
}

func paymentReplyToProto(r *PaymentReply) *clusterpb.PaymentReply {
	return &clusterpb.PaymentReply{Payment: paymentToProto(r.Payment), Session: sessionToProto(r.Session),
		AlreadyApplied: r.AlreadyApplied, Error: errorToProto(r.Err)}
}

func paymentReplyFromProto(r *clusterpb.PaymentReply) *PaymentReply {
	return &PaymentReply{Payment: paymentFromProto(r.GetPayment()), Session: sessionFromProto(r.GetSession()),
		AlreadyApplied: r.GetAlreadyApplied(), Err: errorFromProto(r.GetError())}
}

func sessionReplyToProto(r *SessionReply) *clusterpb.SessionReply {
	return &clusterpb.SessionReply{Session: sessionToProto(r.Session), Error: errorToProto(r.Err)}
}

func sessionReplyFromProto(r *clusterpb.SessionReply) *SessionReply {
	return &SessionReply{Session: sessionFromProto(r.GetSession()), Err: errorFromProto(r.GetError())}
}
