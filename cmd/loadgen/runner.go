package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"
)

// sessionRun is everything that happened to one session of the run.
type sessionRun struct {
	Index    int
	Kind     kind
	Merchant int
	MemoType string
	Amount   stroops
	Asset    string

	ID string
	// Scheduled is when the session was due to start: on the open loop's
	// fixed schedule, or when a closed-loop worker took it up. Latencies
	// "from schedule" count from here, so a slow server cannot hide the
	// requests it delayed (no coordinated omission).
	Scheduled   time.Time
	CreateStart time.Time
	CreateDone  time.Time
	Payments    []paymentRun
	// Finished is when every expected webhook had arrived; zero if they
	// did not within --settle.
	Finished time.Time
	// Err is the first thing that went wrong driving the session.
	Err string

	// Final and FinalPayments are the session and its payments as the API
	// showed them in the final check.
	Final         *sessionObj
	FinalPayments []paymentObj
	CheckErr      string
}

// paymentRun is one transaction a customer submitted for a session.
type paymentRun struct {
	Amount   stroops
	SubmitAt time.Time // just before the signed transaction was POSTed
	AckAt    time.Time // when the sandbox answered: its ledger had closed
	Ledger   int32     // the ledger it closed in
	Hash     string
	Err      string
}

// runner drives one run.
type runner struct {
	cfg      config
	runID    string
	clock    func() time.Time
	apis     []*apiClient
	chain    *chain
	rcv      *receiver
	pool     customers
	asset    string // loadgen's credit asset, CODE:ISSUER, for wrong_asset sessions
	runs     []*sessionRun
	progress progressCounts
}

// progressCounts are live counters for the progress display.
type progressCounts struct {
	Started  atomic.Int64
	Created  atomic.Int64
	Paid     atomic.Int64
	Finished atomic.Int64
	Failed   atomic.Int64
}

// drive sets up, runs the load, waits for it to settle and checks the
// outcome through the API.
func drive(parent context.Context, cfg config, stderr io.Writer) (*result, error) {
	clock := time.Now
	transport := &http.Transport{
		Proxy:               nil, // loopback by default: never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: 60 * time.Second}
	var idb [4]byte
	_, _ = crand.Read(idb[:])
	r := &runner{cfg: cfg, runID: hex.EncodeToString(idb[:]), clock: clock, chain: newChain(cfg.SandboxURL, hc),
		rcv: newReceiver(clock)}
	stats := &apiStats{}
	for _, k := range cfg.APIKeys {
		r.apis = append(r.apis, &apiClient{base: cfg.APIURL, key: k, http: hc, stats: stats})
	}

	setupCtx, cancelSetup := context.WithTimeout(parent, r.setupTimeout())
	defer cancelSetup()
	if err := r.preflight(setupCtx, hc); err != nil {
		return nil, err
	}
	srv, err := startReceiver(cfg.WebhookAddr, r.rcv)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	endpoints, err := r.registerEndpoints(setupCtx, srv)
	defer r.deleteEndpoints(endpoints)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "loadgen run %s: %d sessions (%s), %s, %d merchant(s), webhooks at %s\n",
		r.runID, cfg.Sessions, cfg.Mix, r.pacing(), len(r.apis), srv.url("/hooks/…"))
	if cfg.Mix.pays() {
		if err := r.setupChain(setupCtx, stderr); err != nil {
			return nil, err
		}
	}
	cancelSetup()

	r.plan()
	start := clock()
	loadCtx, cancelLoad := context.WithDeadline(parent, start.Add(cfg.Duration))
	defer cancelLoad()
	stopProgress := startProgress(cfg, stderr, r, start)
	if cfg.Rate > 0 {
		r.openLoop(loadCtx, start)
	} else {
		r.closedLoop(loadCtx)
	}
	end := clock()
	cutOff := loadCtx.Err() != nil && parent.Err() == nil
	cancelLoad()
	stopProgress()
	if parent.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", parent.Err())
	}

	fmt.Fprintf(stderr, "load done in %s; checking every session through the API…\n", end.Sub(start).Round(time.Millisecond))
	checkCtx, cancelCheck := context.WithTimeout(parent, cfg.CheckTimeout)
	defer cancelCheck()
	checkStart := clock()
	checkErr := r.finalCheck(checkCtx)
	fmt.Fprintf(stderr, "checked %d sessions in %s\n", r.progress.Created.Load(), clock().Sub(checkStart).Round(time.Millisecond))

	ours := map[string]bool{}
	for _, s := range r.runs {
		if s.ID != "" {
			ours[s.ID] = true
		}
	}
	snap := r.rcv.snapshot(ours)
	res := summarize(r, snap, stats, start, end)
	res.CutOff = cutOff
	res.Violations = verify(r.runs, snap, cfg.LateMode)
	if cutOff {
		res.Violations = append(res.Violations, violation{Problem: fmt.Sprintf(
			"--duration %s ran out: %d of %d sessions were started", cfg.Duration, r.progress.Started.Load(), cfg.Sessions)})
	}
	if checkErr != nil {
		res.Violations = append(res.Violations, violation{Problem: "final check: " + checkErr.Error()})
	}
	return res, nil
}

func (r *runner) pacing() string {
	if r.cfg.Rate > 0 {
		return fmt.Sprintf("open loop at %g sessions/s", r.cfg.Rate)
	}
	return fmt.Sprintf("closed loop, concurrency %d", r.cfg.Concurrency)
}

// preflight checks that both servers answer, so that a wrong URL or a
// server not started fails at once and says so.
func (r *runner) preflight(ctx context.Context, hc *http.Client) error {
	for _, p := range []struct{ name, url, hint string }{
		{"checkoutd", r.cfg.APIURL + "/healthz", "is `checkoutd dev` running? (--api)"},
		{"the sandbox network", r.cfg.SandboxURL + "/", "is `checkoutd dev` running? (--sandbox)"},
	} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
		if err != nil {
			return usagef("%s: %v", p.name, err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return usagef("%s does not answer at %s: %v; %s", p.name, p.url, err, p.hint)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return usagef("%s answered %d at %s; %s", p.name, resp.StatusCode, p.url, p.hint)
		}
	}
	return nil
}

// endpoint is a webhook endpoint this run registered.
type endpoint struct {
	api *apiClient
	id  string
}

// registerEndpoints registers one endpoint per merchant, each on its own
// receiver path, subscribed to every event.
func (r *runner) registerEndpoints(ctx context.Context, srv *receiverServer) ([]endpoint, error) {
	var out []endpoint
	for i, api := range r.apis {
		path := "/hooks/" + strconv.Itoa(i)
		e, err := api.createEndpoint(ctx, fmt.Sprintf("loadgen-%s-endpoint-%d", r.runID, i), srv.url(path), "loadgen run "+r.runID)
		if isAPICode(err, "url_forbidden") || isAPICode(err, "url_insecure") {
			return out, usagef("checkoutd refuses loadgen's webhook receiver %s: %v.\n"+
				"Run checkoutd with --webhooks-allow-insecure and loopback allowlisted, e.g.\n"+
				"  CHECKOUTD_WEBHOOKS_ALLOWLIST=127.0.0.1 go run ./cmd/checkoutd dev", srv.url(path), err)
		}
		if isAPICode(err, "api_key_invalid") {
			return out, usagef("API key %d of %d (%.16s…) is not valid on %s: `checkoutd dev` makes a new key every start", i+1, len(r.apis), api.key, r.cfg.APIURL)
		}
		if err != nil {
			return out, fmt.Errorf("register the webhook endpoint: %w", err)
		}
		out = append(out, endpoint{api: api, id: e.ID})
		if err := r.rcv.addEndpoint(path, e.Secret); err != nil {
			return out, err
		}
	}
	return out, nil
}

// deleteEndpoints removes the run's endpoints, so that later events are
// not sent to a receiver that is gone.
func (r *runner) deleteEndpoints(eps []endpoint) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range eps {
		_ = e.api.deleteEndpoint(ctx, e.id)
	}
}

// setupChain funds the customers and the issuer of loadgen's credit asset.
func (r *runner) setupChain(ctx context.Context, stderr io.Writer) error {
	kps := make([]*keypair.Full, r.cfg.Customers)
	for i := range kps {
		kps[i] = keypair.MustRandom()
	}
	t0 := r.clock()
	issuer := keypair.MustRandom()
	if err := r.chain.fund(ctx, issuer.Address()); err != nil {
		return fmt.Errorf("fund the asset issuer through friendbot: %w", err)
	}
	if err := r.chain.fundCustomers(ctx, kps, r.customerBalance()); err != nil {
		return fmt.Errorf("fund the customers: %w", err)
	}
	// The session asks for LOAD issued by an account of our own; the
	// customer pays XLM, which names the session but not its asset.
	r.asset = "LOAD:" + issuer.Address()
	r.pool = make(customers, len(kps))
	for _, kp := range kps {
		r.pool.give(kp)
	}
	fmt.Fprintf(stderr, "funded %d customers in %s\n", len(kps), r.clock().Sub(t0).Round(time.Millisecond))
	return nil
}

// setupTimeout bounds the setup: two minutes, plus two seconds for each
// friendbot grant fundCustomers will ask for. The sandbox funds requests
// made together in one ledger, so that is generous; it is sized for a
// friendbot that funds one account a ledger.
func (r *runner) setupTimeout() time.Duration {
	if !r.cfg.Mix.pays() {
		return 2 * time.Minute
	}
	perTreasury := max(1, min(int(friendbotBudget/r.customerBalance()), r.cfg.Customers))
	grants := (r.cfg.Customers + perTreasury - 1) / perTreasury
	return 2*time.Minute + time.Duration(grants)*2*time.Second
}

// maxSessionCost bounds what one session costs its customer: the largest
// amount plan picks, the overpayment and fees.
const maxSessionCost = (maxAmountXLM + 3) * stroopsPerUnit

// maxAmountXLM bounds the amounts plan picks, in whole XLM.
const maxAmountXLM = 20

// customerBalance is what each customer starts with: enough for twice its
// share of the sessions, since the pool hands customers out unevenly.
func (r *runner) customerBalance() stroops {
	share := (r.cfg.Sessions + r.cfg.Customers - 1) / r.cfg.Customers
	return stroops(2*share+2)*maxSessionCost + 5*stroopsPerUnit
}

// plan decides every session's kind, merchant, memo type and amount.
func (r *runner) plan() {
	ks := r.cfg.Mix.assign(r.cfg.Sessions, r.cfg.Seed)
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0xa770))
	for i, k := range ks {
		s := &sessionRun{Index: i, Kind: k, Merchant: i % len(r.apis), MemoType: r.cfg.MemoTypes[i%len(r.cfg.MemoTypes)],
			Amount: stroops(1+rng.IntN(maxAmountXLM))*stroopsPerUnit + stroops(rng.IntN(stroopsPerUnit)), Asset: "XLM"}
		if k == kindWrongAsset {
			s.Asset = r.asset
		}
		r.runs = append(r.runs, s)
	}
}

// openLoop starts session i at start + i/rate whatever happened to the
// ones before, each in its own goroutine.
func (r *runner) openLoop(ctx context.Context, start time.Time) {
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	var wg sync.WaitGroup
	for i, s := range r.runs {
		s.Scheduled = start.Add(time.Duration(i) * interval)
		if d := s.Scheduled.Sub(r.clock()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				wg.Wait()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		r.progress.Started.Add(1)
		wg.Go(func() { r.runSession(ctx, s) })
	}
	wg.Wait()
}

// closedLoop runs Concurrency workers, each starting a session as soon as
// its previous one finished.
func (r *runner) closedLoop(ctx context.Context) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.Concurrency, len(r.runs)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(r.runs) {
					return
				}
				s := r.runs[i]
				s.Scheduled = r.clock()
				r.progress.Started.Add(1)
				r.runSession(ctx, s)
			}
		})
	}
	wg.Wait()
}

// runSession creates, pays and waits for one session.
func (r *runner) runSession(ctx context.Context, s *sessionRun) {
	if err := r.driveSession(ctx, s); err != nil {
		s.Err = err.Error()
		r.progress.Failed.Add(1)
		return
	}
	r.progress.Finished.Add(1)
}

func (r *runner) driveSession(ctx context.Context, s *sessionRun) error {
	api := r.apis[s.Merchant]
	req := sessionCreate{Amount: s.Amount.String(), Asset: s.Asset, MemoType: s.MemoType,
		Metadata: map[string]string{"loadgen_run": r.runID, "kind": string(s.Kind)}}
	if s.Kind == kindLate && r.cfg.LateMode == lateExpire {
		req.ExpiresIn = 60 // the API's minimum
	}
	s.CreateStart = r.clock()
	sess, err := api.createSession(ctx, fmt.Sprintf("loadgen-%s-%d", r.runID, s.Index), req)
	s.CreateDone = r.clock()
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	s.ID = sess.ID
	r.progress.Created.Add(1)
	if s.Kind == kindUnpaid {
		s.Finished = s.CreateDone
		return nil
	}
	exp := expect(s.Kind, r.cfg.LateMode)
	done := r.rcv.expect(s.ID, exp.Events)

	switch {
	case s.Kind == kindLate && r.cfg.LateMode == lateCancel:
		if _, err := api.cancelSession(ctx, s.ID); err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
	case s.Kind == kindLate:
		// Pay once the ledger's clock is past the expiry: ledgers close
		// every second on the sandbox, so two seconds past is safely late.
		if err := sleepUntil(ctx, r.clock, sess.ExpiresAt.Add(2*time.Second)); err != nil {
			return fmt.Errorf("wait for the expiry: %w", err)
		}
	}

	var amounts []stroops
	switch s.Kind {
	case kindPartial:
		first := s.Amount * 4 / 10
		amounts = []stroops{first, s.Amount - first}
	case kindOverpaid:
		amounts = []stroops{s.Amount + 15*stroopsPerUnit/10}
	default:
		amounts = []stroops{s.Amount}
	}
	kp, err := r.pool.take(ctx)
	if err != nil {
		return fmt.Errorf("wait for a customer: %w", err)
	}
	for _, amt := range amounts {
		p := paymentRun{Amount: amt, SubmitAt: r.clock()}
		hash, ledger, err := r.chain.pay(ctx, kp, sess, amt)
		p.AckAt, p.Ledger, p.Hash = r.clock(), ledger, hash
		if err != nil {
			p.Err = err.Error()
			s.Payments = append(s.Payments, p)
			r.pool.give(kp)
			return fmt.Errorf("pay %s: %w", amt, err)
		}
		s.Payments = append(s.Payments, p)
	}
	r.pool.give(kp)
	r.progress.Paid.Add(1)

	t := time.NewTimer(r.cfg.Settle)
	defer t.Stop()
	select {
	case <-done:
		s.Finished = r.clock()
		return nil
	case <-t.C:
		return fmt.Errorf("not every expected webhook arrived within --settle %s", r.cfg.Settle)
	case <-ctx.Done():
		return fmt.Errorf("waiting for webhooks: %w", ctx.Err())
	}
}

func sleepUntil(ctx context.Context, clock func() time.Time, t time.Time) error {
	d := t.Sub(clock())
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// finalCheck reads every session and its payments back through the API:
// sessions by listing each merchant's newest sessions (a hundred a
// request), payments one session at a time.
func (r *runner) finalCheck(ctx context.Context) error {
	byMerchant := map[int]map[string]*sessionRun{}
	for _, s := range r.runs {
		if s.ID == "" {
			continue
		}
		if byMerchant[s.Merchant] == nil {
			byMerchant[s.Merchant] = map[string]*sessionRun{}
		}
		byMerchant[s.Merchant][s.ID] = s
	}
	var errs []error
	for m, want := range byMerchant {
		if err := r.listBack(ctx, r.apis[m], want); err != nil {
			errs = append(errs, err)
		}
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, s := range r.runs {
		if s.ID == "" {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			api := r.apis[s.Merchant]
			if s.Final == nil { // not in the lists: fetch it alone
				sess, err := api.getSession(ctx, s.ID)
				if err != nil {
					s.CheckErr = err.Error()
					return
				}
				s.Final = &sess
			}
			ps, err := api.sessionPayments(ctx, s.ID)
			if err != nil {
				s.CheckErr = err.Error()
				return
			}
			s.FinalPayments = ps
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// listBack pages through a merchant's sessions, newest first, until every
// one in want has been seen or the pages are older than the run.
func (r *runner) listBack(ctx context.Context, api *apiClient, want map[string]*sessionRun) error {
	left := len(want)
	after := ""
	maxPages := len(want)/100 + 50 // other clients may add sessions meanwhile
	for page := 0; left > 0 && page < maxPages; page++ {
		l, err := api.listSessions(ctx, after)
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		for i := range l.Data {
			if s := want[l.Data[i].ID]; s != nil && s.Final == nil {
				s.Final = &l.Data[i]
				left--
			}
		}
		if !l.HasMore || len(l.Data) == 0 {
			break
		}
		after = l.Data[len(l.Data)-1].ID
	}
	return nil
}
