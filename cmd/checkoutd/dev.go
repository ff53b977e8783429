package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/api/hosted"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/stellar/horizon"
	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
)

// devAutovacuumNaptime is how often dev's own Postgres looks for tables
// to vacuum; see docs/operations.md, "Postgres settings that matter".
const devAutovacuumNaptime = "5s"

// devConfig is everything `checkoutd dev` is configured with.
type devConfig struct {
	// DatabaseURL names an existing Postgres; empty starts one under DataDir.
	DatabaseURL string
	HTTPAddr    string
	SandboxAddr string
	DataDir     string
	LogLevel    string
	PprofAddr   string
}

// devMerchantName is the demo merchant's name; its receiving account is
// derived from devMerchantSeed, so every run finds the same merchant.
const (
	devMerchantName = "Demo Shop"
	devMerchantSeed = "checkoutd dev: the demo merchant's sandbox receiving account"
)

func parseDevFlags(args []string, stderr io.Writer) (devConfig, error) {
	var c devConfig
	f := newFlags("dev")
	f.SetOutput(stderr)
	f.string(&c.DatabaseURL, "database-url", "DATABASE_URL", "", "Postgres connection URL (default: start a local Postgres with data under --data-dir)")
	f.string(&c.HTTPAddr, "http-addr", "CHECKOUTD_DEV_HTTP_ADDR", "127.0.0.1:8080", "address the API and the hosted pages listen on (port 0: any free port)")
	f.string(&c.SandboxAddr, "sandbox-addr", "CHECKOUTD_DEV_SANDBOX_ADDR", "127.0.0.1:8000", "address the sandbox Stellar network listens on (port 0: any free port)")
	f.string(&c.DataDir, "data-dir", "CHECKOUTD_DEV_DATA_DIR", ".checkoutd", "where the local Postgres keeps its data between runs")
	f.string(&c.LogLevel, "log-level", "CHECKOUTD_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	f.string(&c.PprofAddr, "pprof-addr", "CHECKOUTD_PPROF_ADDR", "", "loopback host:port serving net/http/pprof for profiling (default: off)")
	if err := f.parse(args); err != nil {
		return c, err
	}
	if err := validatePprofAddr("dev", c.PprofAddr); err != nil {
		return c, err
	}
	for name, addr := range map[string]string{"http-addr": c.HTTPAddr, "sandbox-addr": c.SandboxAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return c, usagef("dev: --%s %q: %v", name, addr, err)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return c, usagef("dev: %v", err)
	}
	if c.DataDir == "" {
		return c, usagef("dev: --data-dir must not be empty")
	}
	return c, nil
}

// runDev runs everything on this machine for trying checkoutd out: a
// Postgres, the sandbox Stellar network, and checkoutd serving the API and
// the hosted pages against them, with a demo merchant ready to take
// payments.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseDevFlags(args, stderr)
	if err != nil {
		return err
	}
	return dev(ctx, cfg, stdout, newLogger(stderr, cfg.LogLevel, "text"), nil)
}

// devInfo is what dev reports once everything is up.
type devInfo struct {
	// APIURL is where the API and the hosted pages answer.
	APIURL string
	// SandboxURL is the in-process sandbox network's Horizon URL.
	SandboxURL string
	// DataDir is where the local Postgres keeps its data; empty with
	// DatabaseURL.
	DataDir    string
	MerchantID string
	// APIKey is a key made for this run.
	APIKey string
}

// dev runs until ctx is done; ready, if not nil, receives the addresses
// and the demo merchant's key once checkoutd serves.
func dev(ctx context.Context, cfg devConfig, stdout io.Writer, logger *slog.Logger, ready chan<- devInfo) (err error) {
	var info devInfo
	dsn := cfg.DatabaseURL
	if dsn == "" {
		pg, err := startDevPostgres(ctx, cfg.DataDir, devFallbackDir(), logger.With("component", "postgres"))
		if err != nil {
			return err
		}
		defer func() {
			if stopErr := pg.stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}()
		dsn, info.DataDir = pg.dsn, pg.dataDir
		if pg.movedFrom != "" {
			fmt.Fprintf(stdout, "The postgres user cannot reach %s, so Postgres keeps its data in %s.\n", pg.movedFrom, pg.dataDir)
		}
	}

	sb, sandboxURL, stopSandbox, err := startDevSandbox(ctx, cfg.SandboxAddr, logger.With("component", "sandbox"))
	if err != nil {
		return err
	}
	defer stopSandbox()
	info.SandboxURL = sandboxURL

	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	merchant, apiKey, err := devMerchant(ctx, db)
	if err != nil {
		return err
	}
	info.MerchantID, info.APIKey = merchant.ID, apiKey

	// The sandbox forgets everything when dev stops; Postgres does not.
	// Fund the demo accounts afresh, then move the new ledger past the
	// cursor the watcher kept from the last run, or it would wait for that
	// ledger number before it saw a payment again.
	customer := keypair.MustRandom()
	if err := devFund(ctx, sb, merchant.Account, customer.Address()); err != nil {
		return err
	}
	if err := devCatchUpLedger(ctx, db, sb, merchant.Account); err != nil {
		return err
	}

	httpAddr, err := resolvePort(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	info.APIURL = "http://" + httpAddr
	scfg, err := parseServeFlags([]string{
		"--database-url", dsn,
		"--network", "sandbox",
		"--horizon-url", sandboxURL,
		"--http-addr", httpAddr,
		"--public-url", info.APIURL,
		"--webhooks-allow-insecure",
		// loadgen's webhook receiver listens on loopback, and a load test
		// should meet the server's limits, not the per-key rate limit.
		"--webhooks-allowlist", "127.0.0.1,::1",
		"--api-rate-limit", "5000",
		"--api-rate-burst", "5000",
		"--log-level", cfg.LogLevel,
		"--log-format", "text",
		"--shutdown-timeout", "10s",
		"--pprof-addr", cfg.PprofAddr,
	}, io.Discard)
	if err != nil {
		return fmt.Errorf("dev: serve config: %w", err)
	}
	scfg.SandboxPayer = hosted.WalletPayer{
		Wallet:   wallet.New(&horizonclient.Client{HorizonURL: sandboxURL + "/"}, sb.Passphrase()),
		Customer: customer,
	}

	served := make(chan string, 1)
	serveErr := make(chan error, 1)
	go func() { serveErr <- serve(ctx, scfg, logger, served) }()
	select {
	case <-served:
	case err := <-serveErr:
		return err
	}
	printDevBanner(stdout, info)
	if err := writeDevEnv(cfg.DataDir, info); err != nil {
		logger.Warn("dev: could not write the dev.env file for loadgen", "err", err)
	}
	if ready != nil {
		ready <- info
	}
	return <-serveErr
}

// resolvePort turns port 0 into a free port now, because the public URL
// that session objects carry must name the real one.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("dev: find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func printDevBanner(w io.Writer, info devInfo) {
	pgLine := "$DATABASE_URL"
	if info.DataDir != "" {
		pgLine = "local, data in " + info.DataDir
	}
	fmt.Fprintf(w, `
checkoutd dev is running.

  API and checkout pages  %s
  Sandbox Stellar network %s (test funds only)
  Postgres                %s
  Demo merchant           %s (%s)
  API key for this run    %s

Create a checkout session:

  curl -s %s/v1/checkout/sessions \
    -H 'Authorization: Bearer %s' \
    -H 'Content-Type: application/json' \
    -d '{"amount": "12.50", "asset": "XLM"}'

Open the "url" it returns and press "Pay with sandbox wallet". Then fetch
the session again:

  curl -s %s/v1/checkout/sessions/cs_... -H 'Authorization: Bearer %s'

Press Ctrl+C to stop.

`, info.APIURL, info.SandboxURL, pgLine, devMerchantName, info.MerchantID, info.APIKey,
		info.APIURL, info.APIKey, info.APIURL, info.APIKey)
}

// devMerchant finds the demo merchant, or creates it, and makes it a fresh
// API key: keys are stored hashed, so last run's cannot be shown again.
func devMerchant(ctx context.Context, db *persistence.DB) (checkout.Merchant, string, error) {
	seed := sha256.Sum256([]byte(devMerchantSeed))
	kp, err := keypair.FromRawSeed(seed)
	if err != nil {
		return checkout.Merchant{}, "", fmt.Errorf("dev: demo account: %w", err)
	}
	ids, err := db.MerchantIDsByAccount(ctx, kp.Address())
	if err != nil {
		return checkout.Merchant{}, "", fmt.Errorf("dev: %w", err)
	}
	now := time.Now()
	if len(ids) == 0 {
		m, err := checkout.NewMerchant(devMerchantName, kp.Address(), now)
		if err != nil {
			return checkout.Merchant{}, "", fmt.Errorf("dev: %w", err)
		}
		key, secret := persistence.NewAPIKey(m.ID, false, now)
		if err := db.CreateMerchantWithKey(ctx, m, key, secret); err != nil {
			return checkout.Merchant{}, "", fmt.Errorf("dev: %w", err)
		}
		return m, secret, nil
	}
	m, err := db.GetMerchant(ctx, ids[0])
	if err != nil {
		return checkout.Merchant{}, "", fmt.Errorf("dev: %w", err)
	}
	key, secret := persistence.NewAPIKey(m.ID, false, now)
	if err := db.CreateAPIKey(ctx, key, secret); err != nil {
		return checkout.Merchant{}, "", fmt.Errorf("dev: %w", err)
	}
	return m, secret, nil
}

// startDevSandbox runs the sandbox network and serves its Horizon API on
// addr. stop shuts both down.
func startDevSandbox(ctx context.Context, addr string, logger *slog.Logger) (*sandbox.Network, string, func(), error) {
	sb, err := sandbox.New(sandbox.Config{Logger: logger})
	if err != nil {
		return nil, "", nil, fmt.Errorf("dev: sandbox: %w", err)
	}
	if err := sb.Start(ctx); err != nil {
		return nil, "", nil, fmt.Errorf("dev: sandbox: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = sb.Close()
		return nil, "", nil, fmt.Errorf("dev: sandbox listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           sb.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { _ = sb.Close() }) // ends the streams
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("sandbox server failed", "err", err)
		}
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = sb.Close()
		<-done
	}
	return sb, "http://" + ln.Addr().String(), stop, nil
}

// devFund funds the accounts, like friendbot, in parallel: each waits for
// its ledger to close.
func devFund(ctx context.Context, sb *sandbox.Network, addresses ...string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(addresses))
	for i, a := range addresses {
		wg.Go(func() { errs[i] = sb.Fund(ctx, a) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}

// devCatchUpLedger closes empty sandbox ledgers until the network is past
// the ledger of account's stored cursor, if it has one.
func devCatchUpLedger(ctx context.Context, db *persistence.DB, sb *sandbox.Network, account string) error {
	c, err := db.GetCursor(ctx, account)
	if checkout.ErrorCode(err) == checkout.ENOTFOUND {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	seq, err := horizon.LedgerOf(c.PagingToken)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	for sb.LatestLedger() <= seq {
		if err := ctx.Err(); err != nil {
			return err
		}
		sb.CloseLedger()
	}
	return nil
}

// devPostgres is a Postgres cluster that dev runs from the installed server
// binaries, with its data kept between runs.
type devPostgres struct {
	dsn     string
	dataDir string
	// movedFrom is the data directory asked for, when the postgres user
	// could not reach it and dataDir is the fallback.
	movedFrom string
	cmd       *exec.Cmd
	exited    chan struct{}
	logger    *slog.Logger
}

// startDevPostgres creates the cluster in dataDir/postgres on first use and
// starts it on a free port of 127.0.0.1. As root, initdb and postgres run as
// the postgres user, which must be able to reach the directory; when it
// cannot (say, under /root), the data goes to fallback instead.
func startDevPostgres(ctx context.Context, dataDir, fallback string, logger *slog.Logger) (*devPostgres, error) {
	bin, err := devPostgresBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := devPostgresCredential()
	if err != nil {
		return nil, err
	}
	base, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("dev: data dir: %w", err)
	}
	pg := &devPostgres{logger: logger}
	pgdata, err := preparePGData(base, cred)
	if err != nil {
		logger.Info("falling back to another data directory", "wanted", base, "reason", err, "using", fallback)
		_ = os.Remove(filepath.Join(base, "postgres")) // only if empty: never data
		if pgdata, err = preparePGData(fallback, cred); err != nil {
			return nil, err
		}
		pg.movedFrom, base = base, fallback
	}
	pg.dataDir = pgdata

	if err := initPGData(ctx, bin, pgdata, cred, logger); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		retry, err := pg.start(ctx, bin, base, cred)
		if err == nil {
			return pg, nil
		}
		if !retry || attempt == 3 {
			return nil, err
		}
	}
}

// devFallbackDir is where the local Postgres keeps its data when the
// postgres user cannot reach --data-dir: a place every user can traverse
// that, unlike /tmp, survives a reboot.
func devFallbackDir() string {
	return fmt.Sprintf("/var/tmp/checkoutd-dev-%d", os.Getuid())
}

// preparePGData makes base and base/postgres, gives the latter to the
// postgres user when running as root, and checks that it can write there.
func preparePGData(base string, cred *syscall.Credential) (string, error) {
	pgdata := filepath.Join(base, "postgres")
	// #nosec G301 -- the postgres user must traverse base when checkoutd runs as root; the data directory below it is initdb's 0700.
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("dev: create %s: %w", base, err)
	}
	if err := os.Mkdir(pgdata, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("dev: create %s: %w", pgdata, err)
	}
	if cred == nil {
		return pgdata, nil
	}
	if err := os.Chown(pgdata, int(cred.Uid), int(cred.Gid)); err != nil {
		return "", fmt.Errorf("dev: give %s to the postgres user: %w", pgdata, err)
	}
	probe := exec.Command("test", "-w", pgdata) // #nosec G204 -- a fixed program; pgdata is the operator's own --data-dir
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := probe.Run(); err != nil {
		return "", fmt.Errorf("dev: the postgres user cannot write to %s", pgdata)
	}
	return pgdata, nil
}

// initPGData runs initdb unless pgdata already holds a cluster, which must
// be of the binaries' major version.
func initPGData(ctx context.Context, bin, pgdata string, cred *syscall.Credential, logger *slog.Logger) error {
	v, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION")) // #nosec G304 -- the operator's own data directory
	if err == nil {
		have := strings.TrimSpace(string(v))
		if want := filepath.Base(filepath.Dir(bin)); isVersionDir(want) && want != have {
			return fmt.Errorf("dev: %s holds a PostgreSQL %s cluster but the server binaries are %s: remove the directory to start afresh", pgdata, have, want)
		}
		return nil
	}
	logger.Info("creating the Postgres cluster", "dir", pgdata)
	// #nosec G204 -- initdb from the installed Postgres binaries, with arguments built here.
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"--pgdata", pgdata, "--username", "postgres", "--auth", "trust",
		"--encoding", "UTF8", "--locale", "C", "--no-sync")
	cmd.Dir = pgdata
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dev: initdb %s: %w\n%s", pgdata, err, out)
	}
	return nil
}

func isVersionDir(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// start runs the postmaster and waits until it accepts connections. retry
// reports whether the port was taken in the meantime.
func (pg *devPostgres) start(ctx context.Context, bin, base string, cred *syscall.Credential) (retry bool, err error) {
	port, err := resolvePort("127.0.0.1:0")
	if err != nil {
		return false, err
	}
	_, portStr, _ := net.SplitHostPort(port)
	logPath := filepath.Join(base, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) // #nosec G304 -- under the operator's own data directory
	if err != nil {
		return false, fmt.Errorf("dev: postgres log: %w", err)
	}
	defer logFile.Close()
	// #nosec G204 -- postgres from the installed Postgres binaries, with arguments built here.
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", pg.dataDir, "-p", portStr,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", // TCP only: no socket path to get wrong
		// Autovacuum looks at each table every 5 s instead of every
		// minute: the webhook queue piles up dead rows under load, and the
		// claim walks them until a vacuum clears them (docs/operations.md).
		"-c", "autovacuum_naptime="+devAutovacuumNaptime)
	cmd.Dir = pg.dataDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		// Its own process group: Ctrl+C reaches dev, which stops Postgres
		// last, after checkoutd no longer needs it.
		Setpgid: true,
		// If dev dies without stopping it, Postgres shuts down anyway.
		Pdeathsig: syscall.SIGINT,
	}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("dev: start postgres: %w", err)
	}
	pg.cmd, pg.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(pg.exited)
	}()
	pg.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable", portStr)

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-pg.exited:
			log, _ := os.ReadFile(logPath) // #nosec G304 -- the log file opened above
			hint := ""
			if bytes.Contains(log, []byte("lock file")) {
				hint = " (is another checkoutd dev running on this data directory?)"
			}
			return bytes.Contains(log, []byte("could not bind")),
				fmt.Errorf("dev: postgres exited during startup%s; its log, %s:\n%s", hint, logPath, lastBytes(log, 2000))
		case <-ctx.Done():
			_ = pg.stop()
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if devPostgresReady(ctx, pg.dsn) {
			pg.logger.Info("postgres is up", "dsn", pg.dsn, "data", pg.dataDir)
			return false, nil
		}
		if time.Now().After(deadline) {
			_ = pg.stop()
			return false, fmt.Errorf("dev: postgres did not accept connections within a minute; see %s", logPath)
		}
	}
}

// stop shuts Postgres down fast (SIGINT), killing it after 30 s.
func (pg *devPostgres) stop() error {
	if pg.cmd == nil {
		return nil
	}
	_ = pg.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-pg.exited:
		pg.logger.Info("postgres stopped")
		return nil
	case <-time.After(30 * time.Second):
		_ = pg.cmd.Process.Kill()
		<-pg.exited
		return errors.New("dev: postgres did not stop within 30s and was killed")
	}
}

func devPostgresReady(ctx context.Context, dsn string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	_ = conn.Close(ctx)
	return true
}

// devPostgresBinaries returns the directory holding initdb and postgres:
// the one on PATH, else the newest of /usr/lib/postgresql/*/bin.
func devPostgresBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); isExecutableFile(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(a)), 64)
		vb, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(b)), 64)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	for _, dir := range dirs {
		if isExecutableFile(filepath.Join(dir, "initdb")) && isExecutableFile(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New("dev: no PostgreSQL server binaries found: install them (apt-get install postgresql) or set DATABASE_URL")
}

func isExecutableFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// devPostgresCredential is the postgres user's when running as root, since
// Postgres refuses to run as root, and nil otherwise.
func devPostgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("dev: running as root, Postgres must run as the postgres user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("dev: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("dev: postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// writeDevEnv writes this run's URLs and API key to <data-dir>/dev.env
// (mode 0600), where loadgen finds them.
func writeDevEnv(dataDir string, info devInfo) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	body := fmt.Sprintf("CHECKOUTD_API_URL=%s\nCHECKOUTD_SANDBOX_URL=%s\nCHECKOUTD_API_KEY=%s\n",
		info.APIURL, info.SandboxURL, info.APIKey)
	return os.WriteFile(filepath.Join(dataDir, "dev.env"), []byte(body), 0o600)
}
