//go:build linux

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
	"sort"
	"sync"
	"time"
)

const (
	flushInterval          = 100 * time.Millisecond
	defaultMaxJournalBytes = 1 << 30
	// maxBatch makes the writer flush early under a flood of events.
	maxBatch = 1 << 16
)

// Source bits, for fences that must pass every active queue.
const (
	srcFanotify uint8 = 1 << iota
	srcInotify
)

// source is an event queue feeding the journal. Its events are handled by
// run's goroutine alone; before it reports a fence (sawFence) it checks
// what produces no events (mounts, unmounts, watch limits) and records
// what it deferred, so the fence record follows all of it.
type source interface {
	// run reads events until ctx is done or the queue fails.
	run(ctx context.Context) error
	// tick does periodic work (deferred records; on a heartbeat, the
	// checks). Called by the main loop, it never waits for the event
	// goroutine: a busy source skips it.
	tick(ctx context.Context, heartbeat bool)
	// describe adds the source's filesystems to the state file, without
	// waiting for the event goroutine.
	describe(ws *WatcherState)
	// activity is what the source tells the watchdog.
	activity() *activity
	close()
}

// watcher is one run of Watch.
type watcher struct {
	opt       WatchOptions
	logf      func(format string, args ...any)
	l         layout
	roots     []string
	filt      *filter
	epoch     string
	kind      string
	reason    string
	started   time.Time
	jw        *journalWriter
	stateDirs []string // state directories below roots, recorded at each fence

	mu        sync.Mutex
	b         batch
	active    uint8
	fenceSeen map[string]fenceWait
	ready     []string
	uncovered map[string]Uncovered
	wake      chan struct{}

	// loopAct is the main loop's activity, for the watchdog.
	loopAct activity
	// stateMu serializes writes of watcher.json (main loop, watchdog)
	// and guards the fields below.
	stateMu   sync.Mutex
	lastState WatcherState
	stalled   string
}

type fenceWait struct {
	seen uint8
	t    time.Time
}

// Watch runs the watcher until ctx is done: it takes the state directory's
// lock, opens a new epoch, sets up fanotify (or inotify) on the roots'
// filesystems and the state directory, and appends what changes to the
// journal. Roots need not exist yet.
func Watch(ctx context.Context, stateDir string, roots []string, opt WatchOptions) error {
	logf := opt.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	roots, err := NormalizeRoots(roots)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	stateDir, err = filepath.Abs(stateDir)
	if err != nil {
		return fmt.Errorf("watch: state directory: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("watch: state directory: %w", err)
	}
	if stateDir, err = filepath.EvalSymlinks(stateDir); err != nil {
		return fmt.Errorf("watch: state directory: %w", err)
	}
	for _, r := range roots {
		if within(r, stateDir) {
			return fmt.Errorf("watch: %s is inside the state directory %s", r, stateDir)
		}
	}
	l := layout{stateDir}
	lock, err := lockStateDir(l.lock())
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer lock.Close()

	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	w := &watcher{
		opt: opt, logf: logf, l: l, roots: roots, filt: newFilter(roots, stateDir),
		epoch: hex.EncodeToString(rnd[:]), started: time.Now().UTC(),
		fenceSeen: map[string]fenceWait{}, uncovered: map[string]Uncovered{}, wake: make(chan struct{}, 1),
		loopAct: activity{name: "the watcher's main loop"},
	}
	if err := w.prepareDirs(); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if w.jw, err = newJournalWriter(l.epoch(w.epoch), opt.SegmentBytes); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.jw.close()
	w.jw.rotated = w.trimJournal
	meta := epochMeta{Epoch: w.epoch, Kind: w.kind, Roots: roots, Started: w.started, PID: os.Getpid()}
	w.jw.lost = func() {
		w.logf("gap: journal segment deleted; continuing in a new segment")
		if _, err := os.Stat(l.epochMeta(w.epoch)); err != nil {
			if err := writeJSONAtomic(l.epochMeta(w.epoch), meta, true); err != nil {
				w.logf("rewrite epoch metadata: %v", err)
			}
		}
	}
	w.emit(Record{Kind: RecStart, Text: fmt.Sprintf("tidemark watcher pid %d", os.Getpid())})

	sources, err := w.setupSources(ctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer func() {
		for _, s := range sources {
			s.close()
		}
	}()
	logf("watching %s with %s: %s", joinPaths(roots), w.kind, w.reason)
	for _, u := range w.uncoveredList() {
		logf("not covered: %s: %s", u.Path, u.Reason)
	}
	meta.Kind = w.kind
	if err := writeJSONAtomic(l.epochMeta(w.epoch), meta, true); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if err := w.writeState(sources); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	return w.loop(ctx, sources)
}

// prepareDirs creates the state layout and removes what older epochs left:
// their records can never again be part of a delta.
func (w *watcher) prepareDirs() error {
	for _, d := range []string{w.l.fences(), w.l.journal(), w.l.sets()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(w.l.journal())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(w.l.journal(), e.Name())); err != nil {
			return fmt.Errorf("remove old epoch: %w", err)
		}
	}
	if ents, err = os.ReadDir(w.l.fences()); err != nil {
		return err
	}
	for _, e := range ents {
		_ = os.Remove(filepath.Join(w.l.fences(), e.Name()))
	}
	for _, d := range []string{filepath.Dir(w.l.dir), w.l.dir, w.l.fences(), w.l.journal(), w.l.epoch(w.epoch), w.l.sets()} {
		if underAny(d, w.roots) {
			w.stateDirs = append(w.stateDirs, d)
		}
	}
	return nil
}

// setupSources prefers fanotify and falls back to inotify for what it
// cannot watch.
func (w *watcher) setupSources(ctx context.Context) ([]source, error) {
	var sources []source
	inoRoots := w.roots
	var fanErr error
	if w.opt.ForceInotify {
		w.reason = "inotify forced by option"
	} else {
		var fan *fanSource
		fan, inoRoots, fanErr = newFanSource(w)
		if fanErr == nil {
			sources = append(sources, fan)
			w.active |= srcFanotify
			w.kind = KindFanotify
			w.reason = "fanotify filesystem marks (CAP_SYS_ADMIN)"
		} else {
			inoRoots = w.roots
			w.reason = "fanotify unavailable: " + fanErr.Error()
		}
	}
	if len(inoRoots) > 0 {
		ino, err := newInoSource(ctx, w, inoRoots)
		if err != nil {
			if len(sources) == 0 {
				return nil, fmt.Errorf("%s; inotify: %w", w.reason, err)
			}
			for _, r := range inoRoots {
				w.setUncovered(r, "unsupported filesystem: "+err.Error())
			}
		} else {
			sources = append(sources, ino)
			w.active |= srcInotify
			if w.kind == "" {
				w.kind = KindInotify
			} else {
				w.reason += "; inotify for " + joinPaths(inoRoots) + " (filesystem fanotify cannot mark)"
			}
		}
	}
	return sources, nil
}

// stopWait bounds how long a stopping watcher waits for its sources and
// watchdog: a source stuck in a system call that never returns (a dead
// network filesystem) must not keep the process from exiting.
const stopWait = 1500 * time.Millisecond

func (w *watcher) loop(ctx context.Context, sources []source) error {
	errc := make(chan error, len(sources))
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	for _, s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.run(runCtx); err != nil && runCtx.Err() == nil {
				errc <- err
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.watchdog(runCtx, sources)
	}()
	defer func() {
		stop()
		for _, s := range sources {
			s.close()
		}
		done := make(chan struct{})
		go func() {
			wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(stopWait):
			w.logf("stopping without waiting for a change source still busy in a system call")
		}
	}()
	if w.opt.ready != nil {
		w.opt.ready()
	}
	flushT := time.NewTicker(flushInterval)
	defer flushT.Stop()
	beatT := time.NewTicker(heartbeatInterval)
	defer beatT.Stop()
	// Every case marks what it does for the watchdog; what the loop
	// waits for in the select is not work.
	for {
		select {
		case <-ctx.Done():
			w.logf("stopping")
			return w.flush()
		case err := <-errc:
			w.gap("", "journal error: "+err.Error())
			_ = w.flush()
			return fmt.Errorf("watch: %w", err)
		case <-flushT.C:
			w.loopAct.begin("writing the journal")
			for _, s := range sources {
				s.tick(runCtx, false)
			}
			err := w.flush()
			w.loopAct.end()
			if err != nil {
				return fmt.Errorf("watch: %w", err)
			}
		case <-w.wake:
			w.loopAct.begin("recording a fence")
			// Each source checked what produces no event (a mount, a
			// lost mark) before it reported the fence.
			if names := w.takeReady(); len(names) > 0 {
				for _, d := range w.stateDirs {
					w.emit(Record{Kind: RecDirty, Path: d})
				}
				// Fence re-reads the coverage once it sees its record:
				// publish it first.
				if err := w.writeState(sources); err != nil {
					w.gap("", "journal error: "+err.Error())
				}
				for _, n := range names {
					w.emit(Record{Kind: RecFence, Path: n})
				}
			}
			err := w.flush()
			w.loopAct.end()
			if err != nil {
				return fmt.Errorf("watch: %w", err)
			}
		case <-beatT.C:
			w.loopAct.begin("writing its heartbeat")
			for _, s := range sources {
				s.tick(runCtx, true)
			}
			err := w.flush()
			if err == nil {
				w.expireFences()
				if err := w.writeState(sources); err != nil {
					w.logf("heartbeat: %v", err)
				}
			}
			w.loopAct.end()
			if err != nil {
				return fmt.Errorf("watch: %w", err)
			}
		}
	}
}

// watchdog checks once a second that the main loop and every source make
// progress. It runs apart from them, so that when one is stuck (the
// heartbeat stops, or an event takes forever) watcher.json says so at
// once: `journal status` shows it and a backup's fence fails with that
// reason instead of waiting for the heartbeat to age.
func (w *watcher) watchdog(ctx context.Context, sources []source) {
	after := w.opt.stallAfter
	if after <= 0 {
		after = stallAfter
	}
	d := newWatchdog(after)
	acts := []*activity{&w.loopAct}
	for _, s := range sources {
		acts = append(acts, s.activity())
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reason := d.check(time.Now(), acts)
		w.stateMu.Lock()
		changed := reason != w.stalled
		w.stalled = reason
		// While stalled the main loop may not write at all: refresh the
		// file now and then so its event count stays current.
		write := changed || reason != "" && time.Since(last) >= heartbeatInterval
		w.stateMu.Unlock()
		if changed {
			if reason != "" {
				w.logf("stalled: %s", reason)
			} else {
				w.logf("no longer stalled")
			}
		}
		if write {
			last = time.Now()
			if err := w.rewriteState(sources); err != nil {
				w.logf("watchdog: %v", err)
			}
		}
	}
}

// processed sums the steps of the sources: events handled and directories
// walked so far.
func processed(sources []source) uint64 {
	var n uint64
	for _, s := range sources {
		n += s.activity().steps.Load()
	}
	return n
}

// emit adds records to the current batch.
func (w *watcher) emit(recs ...Record) {
	if len(recs) == 0 {
		return
	}
	now := time.Now()
	w.mu.Lock()
	for _, r := range recs {
		if r.Time.IsZero() {
			r.Time = now
		}
		w.b.add(r)
	}
	full := w.b.len() >= maxBatch
	w.mu.Unlock()
	if full {
		w.poke()
	}
}

func (w *watcher) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// gap records that changes below scope ("" for everywhere) may be missing.
func (w *watcher) gap(scope, reason string) {
	if scope == "" {
		w.logf("gap: %s", reason)
	} else {
		w.logf("gap below %s: %s", scope, reason)
	}
	w.emit(Record{Kind: RecGap, Path: scope, Text: reason})
}

// sawFence is called by a source when it read the creation of a fence
// marker; the fence is recorded once every active source has seen it,
// because only then is everything queued before it in the journal.
func (w *watcher) sawFence(name string, src uint8) {
	w.mu.Lock()
	f := w.fenceSeen[name]
	if f.t.IsZero() {
		f.t = time.Now()
	}
	f.seen |= src
	done := f.seen&w.active == w.active
	if done {
		delete(w.fenceSeen, name)
		w.ready = append(w.ready, name)
	} else {
		w.fenceSeen[name] = f
	}
	w.mu.Unlock()
	if done {
		w.poke()
	}
}

func (w *watcher) takeReady() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.ready
	w.ready = nil
	return r
}

// expireFences forgets fences only some sources saw (their Fence call has
// long timed out).
func (w *watcher) expireFences() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for n, f := range w.fenceSeen {
		if time.Since(f.t) > time.Minute {
			delete(w.fenceSeen, n)
		}
	}
}

func (w *watcher) flush() error {
	w.mu.Lock()
	recs := w.b.take()
	w.mu.Unlock()
	if err := w.jw.write(recs); err != nil {
		return err
	}
	return nil
}

func (w *watcher) setUncovered(path, reason string) {
	w.mu.Lock()
	_, had := w.uncovered[path]
	w.uncovered[path] = Uncovered{Path: path, Reason: reason}
	w.mu.Unlock()
	if !had {
		w.logf("not covered: %s: %s", path, reason)
	}
}

func (w *watcher) clearUncovered(path string) {
	w.mu.Lock()
	_, had := w.uncovered[path]
	delete(w.uncovered, path)
	w.mu.Unlock()
	if had {
		w.logf("covered again: %s", path)
	}
}

func (w *watcher) uncoveredList() []Uncovered {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Uncovered
	for _, u := range w.uncovered {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// writeState rewrites watcher.json (the heartbeat).
func (w *watcher) writeState(sources []source) error {
	ws := WatcherState{
		PID: os.Getpid(), Epoch: w.epoch, Kind: w.kind, Started: w.started, Heartbeat: time.Now().UTC(),
		Roots: w.roots, Reason: w.reason, Uncovered: w.uncoveredList(),
	}
	for _, s := range sources {
		s.describe(&ws)
	}
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	ws.Stalled, ws.Processed = w.stalled, processed(sources)
	w.lastState = ws
	return writeJSONAtomic(w.l.watcher(), ws, false)
}

// rewriteState writes the last state again with the watchdog's verdict and
// the current event count, keeping the main loop's heartbeat time: the
// heartbeat says when the loop last ran, not that the process lives.
func (w *watcher) rewriteState(sources []source) error {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	if w.lastState.Epoch == "" {
		return nil // not written yet
	}
	ws := w.lastState
	ws.Stalled, ws.Processed = w.stalled, processed(sources)
	w.lastState = ws
	return writeJSONAtomic(w.l.watcher(), ws, false)
}

// trimJournal runs when a segment is full: compaction for the registered
// sets, then the size bound.
func (w *watcher) trimJournal() {
	if n, err := compact(w.l, w.epoch, time.Now()); err != nil {
		w.logf("compaction: %v", err)
	} else if n > 0 {
		w.logf("compaction: removed %d journal segments", n)
	}
	max := w.opt.MaxJournalBytes
	if max <= 0 {
		max = defaultMaxJournalBytes
	}
	segs, err := listSegments(w.l.epoch(w.epoch))
	if err != nil {
		w.logf("compaction: %v", err)
		return
	}
	var total int64
	for _, s := range segs {
		total += s.size
	}
	for i := 0; i+1 < len(segs) && total > max; i++ {
		if err := os.Remove(segs[i].path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.logf("compaction: %v", err)
			return
		}
		total -= segs[i].size
		w.logf("journal over %d bytes: dropped segment %s", max, filepath.Base(segs[i].path))
	}
}

func joinPaths(ps []string) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += p
	}
	return s
}
