package changes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Fence proves that everything that happened before it is in the journal:
// it creates a marker file in the state directory (watched through the same
// ordered event queue as the roots), waits until the watcher has recorded
// it, and returns the cursor of that record. It fails with a *GapError when
// no healthy watcher covers all roots.
//
// The wait is timeout while the watcher shows no progress, renewed each
// time it does (its count of handled events advances, or the journal
// grows), up to MaxFenceWait in all: a watcher working through a backlog
// on a loaded machine is slow, and a slow answer beats a full scan. A
// watcher that dies, whose heartbeat goes stale, or whose watchdog reports
// it stalled ends the wait at once with that reason.
func (j *Journal) Fence(ctx context.Context, roots []string, timeout time.Duration) (Cursor, error) {
	roots, err := cleanRoots(roots)
	if err != nil {
		return Cursor{}, fmt.Errorf("journal fence: %w", err)
	}
	ws, err := j.healthyWatcher()
	if err != nil {
		return Cursor{}, err
	}
	// Whether the roots are covered is decided once the fence is recorded:
	// the watcher checks mounts and bind mounts just before, so a path it
	// could not cover a moment ago may be covered by then (and the other
	// way round).
	for _, r := range roots {
		if !underAny(r, ws.Roots) {
			return Cursor{}, gapf("path not watched: %s", r)
		}
	}
	tail, err := newTailer(j.l.epoch(ws.Epoch))
	if err != nil {
		return Cursor{}, gapf("journal error: %v", err)
	}
	names := map[string]bool{}
	defer func() {
		// A marker has done its job once the watcher saw it; its
		// deletion is an event the watcher ignores.
		for n := range names {
			os.Remove(filepath.Join(j.l.fences(), n))
		}
	}()
	if err := j.placeMarker(names); err != nil {
		return Cursor{}, err
	}
	start := time.Now()
	hard := start.Add(max(j.maxFenceWait, timeout))
	deadline := start.Add(timeout)
	progressed := func() {
		if deadline = time.Now().Add(timeout); deadline.After(hard) {
			deadline = hard
		}
	}
	processed := ws.Processed
	wait := time.Millisecond
	lastCheck := time.Now()
	for {
		var seq uint64
		lost, grew := false, false
		found, err := tail.poll(func(r Record) bool {
			grew = true
			if r.Kind == RecFence && names[r.Path] {
				seq = r.Seq
				return true
			}
			// An overflow may have dropped the marker's own event: place
			// another one rather than wait for the timeout.
			if r.Kind == RecGap && r.Path == "" && r.Text == "overflow" {
				lost = true
			}
			return false
		})
		if err != nil {
			return Cursor{}, gapf("journal error: %v", err)
		}
		if lost && !found && len(names) < 20 {
			if err := j.placeMarker(names); err != nil {
				return Cursor{}, err
			}
		}
		if found {
			// The watcher checked mounts and published its coverage just
			// before recording the fence: check again with that.
			now, err := j.healthyWatcher()
			if err != nil {
				return Cursor{}, err
			}
			if now.Epoch != ws.Epoch {
				return Cursor{}, gapf("epoch changed")
			}
			if err := checkCoverage(now, roots); err != nil {
				return Cursor{}, err
			}
			return Cursor{Kind: ws.Kind, Epoch: ws.Epoch, Seq: seq}, nil
		}
		if grew {
			progressed()
		}
		if time.Since(lastCheck) > 250*time.Millisecond {
			// Fail early when the watcher died, restarted or stalled
			// meanwhile; wait longer while it works.
			lastCheck = time.Now()
			now, err := j.healthyWatcher()
			if err != nil {
				return Cursor{}, err
			}
			if now.Epoch != ws.Epoch {
				return Cursor{}, gapf("epoch changed")
			}
			if now.Processed != processed {
				processed = now.Processed
				progressed()
			}
		}
		if now := time.Now(); !now.Before(deadline) {
			if now.Before(hard) {
				return Cursor{}, gapf("fence timeout: the watcher did not record the fence and showed no progress for %v", timeout)
			}
			return Cursor{}, gapf("fence timeout: the watcher was still busy and had not recorded the fence after %v", hard.Sub(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return Cursor{}, ctx.Err()
		case <-time.After(min(wait, time.Until(deadline))):
		}
		wait = min(wait*2, 20*time.Millisecond)
	}
}

// placeMarker creates a fence marker with a new random name and adds the
// name to names.
func (j *Journal) placeMarker(names map[string]bool) error {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("journal fence: %w", err)
	}
	name := hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(filepath.Join(j.l.fences(), name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return gapf("watcher not running (cannot create fence marker: %v)", err)
		}
		return fmt.Errorf("journal fence: %w", err)
	}
	names[name] = true
	return f.Close()
}

// healthyWatcher returns the running watcher's state, or a *GapError.
func (j *Journal) healthyWatcher() (*WatcherState, error) {
	var ws WatcherState
	if err := readJSON(j.l.watcher(), &ws); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, gapf("watcher not running")
		}
		return nil, gapf("journal error: %v", err)
	}
	alive, err := watcherLocked(j.l.lock())
	if err != nil {
		return nil, gapf("journal error: %v", err)
	}
	if !alive {
		return nil, gapf("watcher not running")
	}
	if ws.Stalled != "" {
		return nil, gapf("watcher stalled: %s", ws.Stalled)
	}
	if age := j.now().Sub(ws.Heartbeat); age > heartbeatStale {
		return nil, gapf("watcher not responding (last heartbeat %v ago)", age.Round(time.Second))
	}
	return &ws, nil
}

// checkCoverage returns a *GapError unless every root is at or below a
// watched root and overlaps no uncovered path.
func checkCoverage(ws *WatcherState, roots []string) error {
	for _, r := range roots {
		if !underAny(r, ws.Roots) {
			return gapf("path not watched: %s", r)
		}
		for _, u := range ws.Uncovered {
			if overlaps(u.Path, r) {
				return gapf("%s", u.Reason)
			}
		}
	}
	return nil
}
