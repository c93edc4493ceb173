package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
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

// LockMode says what a lock holder may do and whom it excludes.
type LockMode int

const (
	// LockShared is for clients that only add objects or read (backup,
	// restore, verify): any number may run at once, and with a prune.
	LockShared LockMode = iota
	// LockPrune is for the one client that deletes data while backups go
	// on (prune, forget): it excludes other prunes and exclusive holders,
	// and relies on waiting for older shared holders instead of blocking
	// new ones (see package prune).
	LockPrune
	// LockExclusive excludes everyone (repair, key remove).
	LockExclusive
	// LockSteady is a shared lock for clients that need the index files to
	// stay as they are while they run (check): it excludes prunes.
	LockSteady
)

// LockInfo is the content of a lock file.
type LockInfo struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Prune     bool      `json:"prune,omitempty"`
	Steady    bool      `json:"steady,omitempty"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Command   string    `json:"command,omitempty"`
	// Holder stays the same when the lock is refreshed under a new name,
	// so a prune can wait for the holders it saw to finish.
	Holder string `json:"holder,omitempty"`
	// Damaged says why the lock file could not be read (see Locks).
	Damaged string `json:"-"`
}

// conflicts reports whether a holder of l must keep mode m out.
func (l LockInfo) conflicts(m LockMode) bool {
	switch {
	case m == LockExclusive || l.Exclusive:
		return true
	case m == LockPrune && (l.Prune || l.Steady):
		return true
	case m == LockSteady && l.Prune:
		return true
	}
	return false
}

func (l LockInfo) kind() string {
	switch {
	case l.Exclusive:
		return "an exclusive"
	case l.Prune:
		return "a prune"
	case l.Steady:
		return "a check"
	}
	return "a shared"
}

// Stale reports whether the lock's holder is gone: its lock was not
// refreshed in time, or it is a process of this host that no longer runs.
func (l LockInfo) Stale(now time.Time) bool {
	if now.Sub(l.Time) > lockStale {
		return true
	}
	host, _ := os.Hostname()
	return l.Host == host && l.PID > 0 && processGone(l.PID)
}

// Lock is a held lock; Unlock releases it.
type Lock struct {
	r      *Repository
	info   LockInfo
	mu     sync.Mutex
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	// written is when the lock file was last written successfully.
	written time.Time
}

// Lock takes a shared or an exclusive lock (see LockMode for the others).
func (r *Repository) Lock(ctx context.Context, exclusive bool, command string) (*Lock, error) {
	mode := LockShared
	if exclusive {
		mode = LockExclusive
	}
	return r.LockMode(ctx, mode, command)
}

// LockMode takes a lock of the given mode. Once it is held, the index is
// checked against the repository: if a prune removed index files since
// this handle read them, the index is read again, so nothing the prune is
// about to delete is used for deduplication.
func (r *Repository) LockMode(ctx context.Context, mode LockMode, command string) (*Lock, error) {
	host, _ := os.Hostname()
	var hid [12]byte
	if _, err := rand.Read(hid[:]); err != nil {
		return nil, err
	}
	info := LockInfo{Time: time.Now().UTC(), Exclusive: mode == LockExclusive, Prune: mode == LockPrune, Steady: mode == LockSteady,
		Host: host, PID: os.Getpid(), Command: command, Holder: hex.EncodeToString(hid[:])}
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
		if l.conflicts(mode) {
			_ = r.raw.Remove(ctx, backend.Handle{Type: backend.Lock, Name: name})
			return nil, fmt.Errorf("%w: %s lock is held by %s (pid %d on %s) since %s; if that process is gone, run `tidemark unlock`",
				ErrLocked, l.kind(), l.Command, l.PID, l.Host, l.Time.Local().Format(time.RFC3339))
		}
	}
	if err := r.revalidateIndex(ctx); err != nil {
		_ = r.raw.Remove(ctx, backend.Handle{Type: backend.Lock, Name: name})
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	lk := &Lock{r: r, info: info, name: name, cancel: cancel, done: make(chan struct{}), written: info.Time}
	go lk.refresh(lctx)
	return lk, nil
}

// Holder returns the lock's holder ID (see LockInfo.Holder).
func (lk *Lock) Holder() string { return lk.info.Holder }

// lockMargin is how long before a lock would count as stale its holder
// stops trusting it: time for the last write to land.
const lockMargin = 5 * time.Minute

// Check returns an error if the lock may have counted as stale to other
// clients: it was not refreshed in time (the process was suspended, or the
// repository was unreachable). A prune may then have deleted data this
// process relies on, so it must not commit anything that references it.
func (lk *Lock) Check() error {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if age := time.Since(lk.written); age > lockStale-lockMargin {
		return fmt.Errorf("lock %s was last refreshed %s ago; other clients may consider it stale, so nothing is committed", lk.name, age.Round(time.Second))
	}
	return nil
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
				lk.written = info.Time
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

// Locks returns all lock files by name. A lock file that cannot be read
// (damaged, or junk that is not a lock) comes back with Damaged set and a
// zero Time, so it counts as stale: a client refreshes its lock under a new
// name every few minutes, so a damaged one belongs to no live client, and
// it must not lock everyone out. `tidemark unlock` removes it.
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
			if !errors.Is(err, ErrCorrupt) {
				return nil, fmt.Errorf("read lock %s: %w", n, err)
			}
			out[n] = LockInfo{Damaged: err.Error()}
			continue
		}
		var l LockInfo
		if err := json.Unmarshal(plain, &l); err != nil {
			out[n] = LockInfo{Damaged: fmt.Sprintf("lock %s: %v", n, err)}
			continue
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
