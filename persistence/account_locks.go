package persistence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AccountLocks holds cluster-wide exclusive locks on receiving accounts, so
// that each account has one watcher in the cluster. They are Postgres
// session advisory locks on one dedicated connection: when the connection
// dies — the node crashed, or lost Postgres — Postgres releases them all, and
// another node's next TryLock takes them over.
type AccountLocks struct {
	dsn    string
	logger *slog.Logger

	mu   sync.Mutex
	conn *pgx.Conn
	// lost is closed when conn is dropped, and with it every lock.
	lost chan struct{}
	held map[string]bool

	quit chan struct{}
	done chan struct{}
}

// lockKey namespaces the advisory lock keys of watched accounts.
const lockKey = `SELECT hashtextextended('checkoutd-watcher:' || $1, 0)`

// StartAccountLocks connects lazily to dsn and checks the connection every
// checkEvery, dropping it (and every lock) when a check fails. Close stops
// the checks and releases the locks.
func StartAccountLocks(dsn string, checkEvery time.Duration, logger *slog.Logger) *AccountLocks {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &AccountLocks{dsn: dsn, logger: logger, quit: make(chan struct{}), done: make(chan struct{})}
	go l.check(checkEvery)
	return l
}

// TryLock tries to take account's lock without waiting. When ok, lost is
// closed once the lock is lost with its connection. Taking a held lock again
// succeeds.
func (l *AccountLocks) TryLock(ctx context.Context, account string) (lost <-chan struct{}, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		conn, err := l.connect(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("lock account %s: connect: %w", account, err)
		}
		l.conn, l.lost, l.held = conn, make(chan struct{}), make(map[string]bool)
	}
	if l.held[account] {
		return l.lost, true, nil
	}
	err = l.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(k) FROM (`+lockKey+`) AS t(k)`, account).Scan(&ok)
	if err != nil {
		// The lock may or may not be held now: drop the connection to know.
		l.dropLocked()
		return nil, false, fmt.Errorf("lock account %s: %w", account, err)
	}
	if ok {
		l.held[account] = true
	}
	return l.lost, ok, nil
}

// connect opens the lock connection. Postgres releases the locks when it
// sees the connection die, which on a crashed machine or a cut network is
// when TCP gives up: the keepalive and user timeout settings make that
// seconds, not the kernel's default of hours.
func (l *AccountLocks) connect(ctx context.Context) (*pgx.Conn, error) {
	// Parsed as the pool parses it, so that pool settings in the URL
	// (pool_max_conns, …) are not sent to the server as parameters.
	pcfg, err := pgxpool.ParseConfig(l.dsn)
	if err != nil {
		return nil, err
	}
	cfg := pcfg.ConnConfig
	for k, v := range map[string]string{"tcp_keepalives_idle": "2", "tcp_keepalives_interval": "1",
		"tcp_keepalives_count": "3", "tcp_user_timeout": "5000"} {
		cfg.RuntimeParams[k] = v
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// Unlock releases account's lock, if held.
func (l *AccountLocks) Unlock(ctx context.Context, account string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || !l.held[account] {
		return nil
	}
	delete(l.held, account)
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock(k) FROM (`+lockKey+`) AS t(k)`, account); err != nil {
		l.dropLocked()
		return fmt.Errorf("unlock account %s: %w", account, err)
	}
	return nil
}

// Close stops the checks and closes the connection, releasing every lock.
func (l *AccountLocks) Close() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLocked()
}

func (l *AccountLocks) check(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), every)
			if err := l.conn.Ping(ctx); err != nil {
				l.logger.Warn("account lock connection failed; releasing every watcher", "err", err, "held", len(l.held))
				l.dropLocked()
			}
			cancel()
		}
		l.mu.Unlock()
	}
}

// dropLocked closes the connection; l.mu must be held.
func (l *AccountLocks) dropLocked() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.conn.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		l.logger.Debug("close account lock connection", "err", err)
	}
	close(l.lost)
	l.conn, l.held = nil, nil
}
