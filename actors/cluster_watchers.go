package actors

import "context"

// AccountLocks grants one node of a cluster the right to watch an account.
// *persistence.AccountLocks implements it with Postgres advisory locks.
type AccountLocks interface {
	// TryLock tries to take account's lock without waiting. When ok, lost
	// is closed if the lock is lost (its holder's connection died).
	TryLock(ctx context.Context, account string) (lost <-chan struct{}, ok bool, err error)
	// Unlock gives account's lock back.
	Unlock(ctx context.Context, account string) error
}

// claimLocked starts account's claim loop; ws.mu must be held.
func (ws *Watchers) claimLocked(account string) {
	if ws.claimed[account] {
		return
	}
	ws.claimed[account] = true
	ws.wg.Go(func() { ws.claim(account) })
}

// claim watches account whenever this node holds its lock: it tries to take
// the lock every LockRetry, runs the watcher while it holds it, and stops
// the watcher (which flushes its cursor) when the lock is lost. It ends when
// the watchers stop.
func (ws *Watchers) claim(account string) {
	log := ws.cfg.Logger.With("account", account)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), ws.cfg.CallTimeout)
		lost, ok, err := ws.cfg.Locks.TryLock(ctx, account)
		cancel()
		if err != nil {
			log.Warn("take watcher lock", "err", err)
		}
		if ok {
			log.Info("took watcher lock; watching")
			ws.own(account, lost)
		}
		if !sleep(ws.cfg.LockRetry, ws.stopping) {
			return
		}
	}
}

// own runs account's watcher until the lock is lost or the watchers stop,
// then gives the lock back.
func (ws *Watchers) own(account string, lost <-chan struct{}) {
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), ws.cfg.CallTimeout)
		defer cancel()
		if err := ws.cfg.Locks.Unlock(ctx, account); err != nil {
			ws.cfg.Logger.Warn("give back watcher lock", "account", account, "err", err)
		}
	}()
	stop := make(chan struct{})
	ended := make(chan struct{})
	w := newWatcher(account, &ws.cfg, &ws.stats, stop, ws.abort)
	ws.mu.Lock()
	if ws.stopped {
		ws.mu.Unlock()
		return
	}
	ws.watchers[account] = w
	ws.mu.Unlock()
	go func() {
		select {
		case <-lost:
			ws.cfg.Logger.Warn("watcher lock lost; stopping the watcher", "account", account)
		case <-ws.stopping:
		case <-ended:
		}
		close(stop)
	}()
	w.run()
	close(ended)
	ws.mu.Lock()
	delete(ws.watchers, account)
	ws.mu.Unlock()
}

// discover starts claim loops for accounts first watched on other nodes, so
// that this node can take them over if their watcher's node dies.
func (ws *Watchers) discover() {
	for sleep(ws.cfg.LockRetry, ws.stopping) {
		ctx, cancel := context.WithTimeout(context.Background(), ws.cfg.CallTimeout)
		accounts, err := ws.cfg.DB.WatchedAccounts(ctx)
		cancel()
		if err != nil {
			ws.cfg.Logger.Warn("list watched accounts", "err", err)
			continue
		}
		ws.mu.Lock()
		if !ws.stopped {
			for _, a := range accounts {
				ws.claimLocked(a)
			}
		}
		ws.mu.Unlock()
	}
}
