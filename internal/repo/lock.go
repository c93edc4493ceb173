package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
)

// ErrLocked is returned when a conflicting lock is held.
var ErrLocked = errors.New("repository is locked")

// Lock timing: a lock is refreshed well before it counts as stale.
const (
	lockRefresh = 5 * time.Minute
	lockStale   = 30 * time.Minute
)

// LockInfo is the content of a lock file.
type LockInfo struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Command   string    `json:"command,omitempty"`
}

// Stale reports whether the lock's holder is gone: its lock was not
// refreshed in time, or it is a process of this host that no longer runs.
func (l LockInfo) Stale(now time.Time) bool {
	if now.Sub(l.Time) > lockStale {
		return true
	}
	host, _ := os.Hostname()
	if l.Host == host && l.PID > 0 {
		if err := syscall.Kill(l.PID, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}

// Lock is a held lock; Unlock releases it.
type Lock struct {
	r      *Repository
	info   LockInfo
	mu     sync.Mutex
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

// Lock takes a shared or exclusive lock. Backups take shared locks (they
// only add objects); operations that delete take exclusive ones.
func (r *Repository) Lock(ctx context.Context, exclusive bool, command string) (*Lock, error) {
	host, _ := os.Hostname()
	info := LockInfo{Time: time.Now().UTC(), Exclusive: exclusive, Host: host, PID: os.Getpid(), Command: command}
	name, err := r.writeLock(ctx, info)
	if err != nil {
		return nil, err
	}
	// Look for conflicts after writing ours, so two racing clients see each
	// other (at least one of them backs off).
	locks, err := r.Locks(ctx)
	if err != nil {
		_ = r.raw.Remove(ctx, backend.Handle{Type: backend.Lock, Name: name})
		return nil, err
	}
	now := time.Now()
	for n, l := range locks {
		if n == name || l.Stale(now) {
			continue
		}
		if exclusive || l.Exclusive {
			_ = r.raw.Remove(ctx, backend.Handle{Type: backend.Lock, Name: name})
			kind := "a shared"
			if l.Exclusive {
				kind = "an exclusive"
			}
			return nil, fmt.Errorf("%w: %s lock is held by %s (pid %d on %s) since %s; if that process is gone, run `tidemark unlock`",
				ErrLocked, kind, l.Command, l.PID, l.Host, l.Time.Local().Format(time.RFC3339))
		}
	}
	lctx, cancel := context.WithCancel(context.Background())
	lk := &Lock{r: r, info: info, name: name, cancel: cancel, done: make(chan struct{})}
	go lk.refresh(lctx)
	return lk, nil
}

func (r *Repository) writeLock(ctx context.Context, info LockInfo) (string, error) {
	buf, err := json.Marshal(info)
	if err != nil {
		return "", err
	}
	id, err := r.saveUnpackedTo(ctx, r.raw, backend.Lock, buf)
	if err != nil {
		return "", fmt.Errorf("write lock: %w", err)
	}
	return id.String(), nil
}

func (lk *Lock) refresh(ctx context.Context) {
	defer close(lk.done)
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			lk.mu.Lock()
			info := lk.info
			info.Time = time.Now().UTC()
			if name, err := lk.r.writeLock(ctx, info); err == nil {
				_ = lk.r.raw.Remove(ctx, backend.Handle{Type: backend.Lock, Name: lk.name})
				lk.name = name
			}
			lk.mu.Unlock()
		}
	}
}

// Unlock removes the lock.
func (lk *Lock) Unlock() error {
	lk.cancel()
	<-lk.done
	lk.mu.Lock()
	defer lk.mu.Unlock()
	return lk.r.raw.Remove(context.Background(), backend.Handle{Type: backend.Lock, Name: lk.name})
}

// Locks returns all readable lock files by name.
func (r *Repository) Locks(ctx context.Context) (map[string]LockInfo, error) {
	var names []string
	if err := r.raw.List(ctx, backend.Lock, func(n string, _ int64) error {
		names = append(names, n)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	out := map[string]LockInfo{}
	for _, n := range names {
		plain, err := r.loadUnpacked(ctx, r.raw, backend.Handle{Type: backend.Lock, Name: n})
		if err != nil {
			if errors.Is(err, backend.ErrNotFound) {
				continue // released meanwhile
			}
			return nil, fmt.Errorf("read lock %s: %w", n, err)
		}
		var l LockInfo
		if err := json.Unmarshal(plain, &l); err != nil {
			return nil, fmt.Errorf("read lock %s: %v: %w", n, err, ErrCorrupt)
		}
		out[n] = l
	}
	return out, nil
}

// RemoveStaleLocks deletes locks whose holders are gone (all locks when
// all is set) and returns how many it removed.
func (r *Repository) RemoveStaleLocks(ctx context.Context, all bool) (int, error) {
	locks, err := r.Locks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := time.Now()
	for name, l := range locks {
		if all || l.Stale(now) {
			if err := r.raw.Remove(ctx, backend.Handle{Type: backend.Lock, Name: name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
