package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/cache"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/config"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// Clock tells the time. The daemon's is the wall clock without its
// monotonic reading, so that a suspend counts as time passed; tests give
// a fake one.
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now().Round(0) }

// Options configure a daemon.
type Options struct {
	Config *config.Config
	// Clock is the wall clock when nil.
	Clock Clock
	// Events receives the daemon's log and events (nil discards them).
	Events func(Event)
	// Poll is how often the change journal is read (default 1 s): the
	// resolution of the recovery point and of the settle timer.
	Poll time.Duration
	// Version is reported by the status.
	Version string
	// HTTPClient sends alert POSTs (nil: a plain client).
	HTTPClient *http.Client
}

// ErrNoJob is returned for a job name the configuration does not have.
var ErrNoJob = errors.New("no such job")

// DatabaseName is the daemon database's file name in the state directory.
const DatabaseName = "daemon.db"

// aliveEvery is how often the daemon records that it runs: after a crash
// the recovery point counts from then.
const aliveEvery = 30 * time.Second

// Daemon is `tidemark run`: the scheduler wired to the watcher, the
// journal, the repositories and the daemon database. Its methods may be
// called from several goroutines (the API's handlers).
type Daemon struct {
	opt       Options
	clock     Clock
	poll      time.Duration
	client    *http.Client
	hub       hub
	st        *store
	journal   *changes.Journal
	stateDir  string
	cacheRoot string
	started   time.Time
	wake      chan struct{}

	// ops counts running operations, bg alerts being sent; opCtx is the
	// parent of every operation's context, cancelled to abandon them.
	ops      sync.WaitGroup
	bg       sync.WaitGroup
	opCtx    context.Context
	opCancel context.CancelFunc

	mu        sync.Mutex
	cfg       *config.Config
	sched     *Scheduler
	jobs      map[string]*job
	feed      *feed
	stopping  bool
	lastAlive time.Time
	feedErr   string
	cancels   map[string]context.CancelFunc
	watch     struct {
		roots  []string
		cancel context.CancelFunc
		done   chan struct{}
	}
}

// Open prepares a daemon: the state directory and the daemon database,
// and each job with what the last daemon remembered of it. Operations a
// killed daemon left running are logged as abandoned.
func Open(ctx context.Context, opt Options) (*Daemon, error) {
	cfg := opt.Config
	stateDir := cfg.Server.StateDir
	if stateDir == "" {
		var err error
		if stateDir, err = changes.DefaultStateDir(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	cacheRoot := cfg.Server.CacheDir
	if cacheRoot == "" {
		var err error
		if cacheRoot, err = cache.DefaultDir(); err != nil {
			return nil, err
		}
	}
	j, err := changes.OpenJournal(stateDir)
	if err != nil {
		return nil, err
	}
	lock, err := lockState(filepath.Join(stateDir, "daemon.lock"))
	if err != nil {
		return nil, err
	}
	st, err := openStore(filepath.Join(stateDir, DatabaseName))
	if err != nil {
		lock.Close()
		return nil, err
	}
	st.lock = lock
	d := &Daemon{opt: opt, clock: opt.Clock, poll: opt.Poll, client: opt.HTTPClient, st: st, journal: j, stateDir: stateDir,
		cacheRoot: cacheRoot, wake: make(chan struct{}, 1), cfg: cfg, sched: NewScheduler(cfg.Server.MaxParallel),
		jobs: map[string]*job{}, feed: &feed{j: j}, cancels: map[string]context.CancelFunc{}}
	if d.clock == nil {
		d.clock = wallClock{}
	}
	if d.poll <= 0 {
		d.poll = time.Second
	}
	if d.client == nil {
		d.client = &http.Client{Timeout: alertTimeout}
	}
	d.opCtx, d.opCancel = context.WithCancel(context.WithoutCancel(ctx))
	now := d.clock.Now()
	d.started = now
	if n, err := st.abandonRunning(ctx, now, "tidemark run stopped while it ran (killed, or the machine went down)"); err != nil {
		st.close()
		return nil, err
	} else if n > 0 {
		d.logf("", "warning", "%d operations were running when tidemark run last stopped; logged as abandoned", n)
	}
	aliveAt, err := st.aliveAt(ctx)
	if err != nil {
		st.close()
		return nil, err
	}
	for _, jc := range cfg.Jobs {
		if err := d.addJob(ctx, jc, now, aliveAt, "tidemark run started: changes made while it was not running are unknown"); err != nil {
			st.close()
			return nil, err
		}
	}
	d.lastAlive = now
	if err := st.setAlive(ctx, now); err != nil {
		st.close()
		return nil, err
	}
	return d, nil
}

// StateDir is the state directory the daemon uses.
func (d *Daemon) StateDir() string { return d.stateDir }

// addJob adds a job with what the store remembers of it. Its changes since
// the daemon last ran are unknown: they count from when it was last known
// alive (or the job's last backup, or now for a job never seen), and a
// backup is due once the settle time has passed.
func (d *Daemon) addJob(ctx context.Context, jc *config.Job, now, aliveAt time.Time, why string) error {
	j, err := newJob(jc, d.stateDir, d.cacheRoot)
	if err != nil {
		return err
	}
	rec, known, err := d.st.loadJob(ctx, jc.Name)
	if err != nil {
		return err
	}
	if !known {
		rec.Info.FirstSeen = now
	}
	j.info = rec.Info
	st := rec.State
	if st.DirtySince.IsZero() {
		switch {
		case known && !aliveAt.IsZero():
			st.DirtySince = aliveAt
		case j.info.LastBackup != nil:
			st.DirtySince = j.info.LastBackup.Started
		default:
			st.DirtySince = now
		}
		if st.DirtySince.After(now) {
			st.DirtySince = now
		}
		st.DirtyWhy = why
	}
	d.jobs[jc.Name] = j
	d.sched.AddJob(jc.Name, j.timing(), st, now)
	d.sched.Changed(jc.Name, now, why)
	d.persist(jc.Name)
	return nil
}

// persist saves a job's state and facts (the caller holds d.mu).
func (d *Daemon) persist(name string) {
	j := d.jobs[name]
	st, ok := d.sched.State(name)
	if j == nil || !ok {
		return
	}
	if err := d.st.saveJob(context.Background(), name, jobRecord{State: st, Info: j.info}); err != nil {
		d.logf(name, "warning", "%v", err)
	}
}

// logf reports a line of the log. It never takes d.mu.
func (d *Daemon) logf(job, level, format string, args ...any) {
	d.emit(Event{Type: EventLog, Job: job, Level: level, Message: fmt.Sprintf(format, args...)})
}

func (d *Daemon) emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if d.opt.Events != nil {
		d.opt.Events(ev)
	}
	d.hub.send(ev)
}

// Subscribe returns a stream of the daemon's events and a function that
// ends it. A subscriber that does not keep up loses events.
func (d *Daemon) Subscribe() (<-chan Event, func()) { return d.hub.subscribe() }

func (d *Daemon) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run runs the watcher and the scheduler until ctx is done, then stops:
// running operations get the configured stop_timeout to finish and are
// abandoned (cancelled, their locks released) after it.
func (d *Daemon) Run(ctx context.Context) error {
	d.mu.Lock()
	d.restartWatcher()
	n := len(d.jobs)
	d.mu.Unlock()
	d.logf("", "info", "running %d jobs; state directory %s", n, d.stateDir)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case <-t.C:
		case <-d.wake:
		}
		d.step()
		t.Reset(d.poll)
	}
}

// step reads the journal, alerts, and starts what is due.
func (d *Daemon) step() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now()
	d.pollJournal(now)
	d.checkAlerts(now)
	if !d.stopping {
		for _, s := range d.sched.Due(now) {
			d.start(s, now)
		}
	}
	if now.Sub(d.lastAlive) >= aliveEvery || now.Before(d.lastAlive) {
		d.lastAlive = now
		if err := d.st.setAlive(context.Background(), now); err != nil {
			d.logf("", "warning", "%v", err)
		}
	}
}

// pollJournal tells the scheduler of each job's changes recorded since
// it last looked.
func (d *Daemon) pollJournal(now time.Time) {
	_, err := d.feed.poll()
	switch {
	case err != nil && err.Error() != d.feedErr:
		d.logf("", "warning", "reading the change journal: %v", err)
		d.feedErr = err.Error()
	case err == nil:
		d.feedErr = ""
	}
	if d.feed.epoch == "" {
		return
	}
	for _, name := range d.sched.Jobs() {
		j := d.jobs[name]
		if j.epoch != d.feed.epoch {
			if j.epoch != "" {
				d.changed(j, now, "the change watcher restarted: changes while it was down are unknown")
			}
			// Seq 1 starts the epoch: the watcher's start, not a change.
			j.epoch, j.seen = d.feed.epoch, 1
		}
		if j.seen >= d.feed.last {
			continue
		}
		delta, err := d.feed.since(j.seen, j.roots)
		j.seen = d.feed.last
		var gap *changes.GapError
		switch {
		case errors.As(err, &gap):
			d.changed(j, now, "change journal: "+gap.Reason)
		case err != nil:
			d.changed(j, now, "change journal: "+err.Error())
		default:
			if p, ok := j.relevant(delta, d.linkedIn(j)); ok {
				d.changed(j, now, "files changed: "+p)
			}
		}
	}
}

func (d *Daemon) changed(j *job, now time.Time, why string) {
	before, _ := d.sched.State(j.name())
	d.sched.Changed(j.name(), now, why)
	j.counters.ChangesSeen++
	if before.DirtySince.IsZero() && before.Running == "" {
		d.persist(j.name())
		d.emitState(j, now)
	}
}

// checkAlerts alerts on recovery points past their bound, and on their
// return below it. What a restart inherits is not alerted on before the
// job's first operation since has ended (it is about to resolve it),
// unless that takes longer than the bound itself.
func (d *Daemon) checkAlerts(now time.Time) {
	for name, j := range d.jobs {
		a := j.cfg.Alert
		if a.After <= 0 {
			continue
		}
		rp := d.sched.RecoveryPoint(name, now)
		switch {
		case !j.rpAlerted && rp > a.After && (j.settledOnce || now.Sub(d.started) > a.After):
			j.rpAlerted = true
			st, _ := d.sched.State(name)
			d.alert(j, AlertRecoveryPoint, fmt.Sprintf("changes unprotected for %s (alert.after %s), since %s (%s)",
				rp.Round(time.Second), a.After, st.DirtySince.Local().Format("2006-01-02 15:04:05"), st.DirtyWhy), rp, "")
		case j.rpAlerted && rp <= a.After:
			j.rpAlerted = false
			d.alert(j, AlertResolved, fmt.Sprintf("changes are protected again (recovery point %s)", rp.Round(time.Second)), rp, "")
		}
	}
}

// alert sends an alert in the background (the caller holds d.mu).
func (d *Daemon) alert(j *job, event, msg string, rp time.Duration, errText string) {
	host, _ := os.Hostname()
	a := Alert{Time: d.clock.Now().UTC(), Host: host, Job: j.name(), Event: event, Message: msg, RecoveryPoint: rp.Seconds(),
		Error: errText, Repository: j.cfg.Repository}
	cfg := j.cfg.Alert
	d.logf(j.name(), "warning", "alert %s: %s", event, msg)
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		err := sendAlert(context.Background(), d.client, cfg, a)
		d.mu.Lock()
		if cur := d.jobs[a.Job]; cur != nil {
			if err != nil {
				cur.counters.AlertsFailed++
			} else {
				cur.counters.AlertsSent++
			}
		}
		d.mu.Unlock()
		if err != nil {
			d.logf(a.Job, "error", "alert %s not delivered: %v", event, err)
		}
	}()
}

// start begins an operation the scheduler decided on (the caller holds
// d.mu).
func (d *Daemon) start(s Start, now time.Time) {
	j := d.jobs[s.Job]
	op := Operation{Job: s.Job, Kind: s.Kind, Reason: s.Reason, Started: now.UTC(), Outcome: OutcomeRunning}
	id, err := d.st.startOp(context.Background(), op)
	if err != nil {
		d.logf(s.Job, "warning", "%v", err)
	}
	op.ID, j.opID = id, id
	d.logf(s.Job, "info", "%s started: %s", s.Kind, s.Reason)
	d.emit(Event{Type: EventOperation, Job: s.Job, Operation: &op})
	d.persist(s.Job)
	d.emitState(j, now)
	ctx, cancel := context.WithCancel(d.opCtx)
	d.cancels[s.Job] = cancel
	p := opParams{job: s.Job, cfg: j.cfg, roots: j.roots, host: j.host, reason: s.Reason, policy: j.policy(now),
		rp: d.sched.RecoveryPoint(s.Job, now), id: id, kind: s.Kind}
	d.ops.Add(1)
	go func() {
		defer d.ops.Done()
		var res opResult
		switch p.kind {
		case OpBackup:
			res = d.runBackup(ctx, p)
		case OpForget:
			res = d.runForget(ctx, p)
		}
		if ctx.Err() != nil && d.opCtx.Err() != nil && res.outcome == OutcomeFailed {
			res.outcome, res.message = OutcomeAbandoned, "abandoned: tidemark run is stopping ("+res.message+")"
		}
		d.finish(p, res)
	}()
}

// finish records an operation's end.
func (d *Daemon) finish(p opParams, res opResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now()
	if cancel := d.cancels[p.job]; cancel != nil {
		cancel()
		delete(d.cancels, p.job)
	}
	if err := d.st.finishOp(context.Background(), p.id, now, res.outcome, res.message, res.details, d.cfg.Server.LogKeep); err != nil {
		d.logf(p.job, "warning", "%v", err)
	}
	level := "info"
	switch res.outcome {
	case OutcomeFailed:
		level = "error"
	case OutcomePartial, OutcomeAbandoned:
		level = "warning"
	}
	d.logf(p.job, level, "%s %s: %s", p.kind, res.outcome, res.message)
	fin := now.UTC()
	d.emit(Event{Type: EventOperation, Job: p.job, Operation: &Operation{ID: p.id, Job: p.job, Kind: p.kind, Reason: p.reason,
		Started: fin.Add(-res.elapsed), Finished: &fin, Outcome: res.outcome, Message: res.message}})
	j := d.jobs[p.job]
	if j == nil {
		return // removed from the configuration meanwhile
	}
	ok := res.outcome == OutcomeOK || res.outcome == OutcomePartial
	out := Outcome{OK: ok, Abandoned: res.outcome == OutcomeAbandoned}
	if p.kind == OpBackup && ok {
		out.Pending = d.pendingAfter(j, res)
	}
	rec := d.sched.Finished(p.job, now, out)
	j.settledOnce = true
	switch p.kind {
	case OpBackup:
		d.backupFinished(j, res, ok, rec, now)
	case OpForget:
		if ok {
			j.counters.Forgets++
			j.info.LastForget = res.forget
		} else {
			j.counters.ForgetsFailed++
		}
	}
	d.persist(p.job)
	d.emitState(j, now)
	d.signal()
}

func (d *Daemon) backupFinished(j *job, res opResult, ok bool, rec *Recovery, now time.Time) {
	if res.outcome == OutcomeAbandoned {
		return
	}
	if !ok {
		j.counters.BackupsFailed++
		prev := j.info.LastError
		j.info.LastError, j.info.LastErrorAt = res.message, now.UTC()
		if j.cfg.Alert.OnFailure && (!j.failAlerted || prev != res.message) {
			j.failAlerted = true
			st, _ := d.sched.State(j.name())
			d.alert(j, AlertBackupFailed, fmt.Sprintf("backup failed (%d in a row, next attempt %s): %s", st.Failures,
				st.RetryAt.Local().Format("15:04:05"), res.message), d.sched.RecoveryPoint(j.name(), now), res.message)
		}
		return
	}
	f := res.facts
	j.counters.Backups++
	if j.counters.ByMode == nil {
		j.counters.ByMode = map[string]uint64{}
	}
	j.counters.ByMode[f.Mode]++
	j.counters.BytesAdded += f.BytesAdded
	j.counters.BytesRead += f.BytesRead
	j.counters.FilesChanged += f.FilesNew + f.FilesChanged
	j.counters.DurationTotal += f.Duration.Seconds()
	j.info.LastBackup, j.info.LastError = f, ""
	if res.repoID != "" && res.repoID != j.info.RepoID {
		j.closeLinks()
		j.info.RepoID = res.repoID
	}
	j.info.LastFull, j.info.JournalSinceFull = res.lastFull, res.journalSinceFull
	if res.verify != nil {
		j.info.Verify = res.verify
	}
	if rec != nil {
		d.logf(j.name(), "info", "caught up: backed up again after %d failed attempts since %s", rec.Failures,
			rec.Since.Local().Format("2006-01-02 15:04:05"))
	}
	if j.failAlerted {
		j.failAlerted = false
		d.alert(j, AlertResolved, "backups succeed again: snapshot "+f.Snapshot, d.sched.RecoveryPoint(j.name(), now), "")
	}
}

// pendingAfter asks the journal whether the job's files changed after a
// finished backup's cursor.
func (d *Daemon) pendingAfter(j *job, res opResult) Pending {
	c := res.cursor
	if c.IsZero() || c.Epoch != d.feed.epoch || c.Kind != d.feed.kind || j.epoch != d.feed.epoch {
		return PendingUnknown
	}
	if c.Seq >= j.seen {
		// Everything read so far is before the fence: in the snapshot.
		j.seen = c.Seq
		return PendingNone
	}
	delta, err := d.journal.Since(c, d.feed.cursor(j.seen), j.roots)
	if err != nil {
		return PendingYes
	}
	if _, ok := j.relevant(delta, d.linkedIn(j)); ok {
		return PendingYes
	}
	return PendingNone
}

// linkedIn returns the test for inodes the journal knows only by number:
// whether the job's last scans met the inode as a multiply-linked file (a
// name of it is inside the job's paths). The backup would find nothing to
// do for any other; fanotify records such inodes for every hard-linked
// file written anywhere on a watched filesystem, so counting them all
// would back up busy machines for nothing. The caller holds d.mu.
func (d *Daemon) linkedIn(j *job) func(changes.Inode) bool {
	return func(in changes.Inode) bool {
		if in.Ino == 0 {
			return true // neither path nor number: only a backup can tell
		}
		if j.links == nil {
			if j.info.RepoID == "" {
				return false // no backup yet: the first scans everything
			}
			db, err := state.Open(filepath.Join(d.cacheRoot, j.info.RepoID, "state.db"))
			if err != nil {
				d.logf(j.name(), "warning", "hard-link records: %v", err)
				return true
			}
			j.links, j.linkSet = db, backup.StatSet(j.host, j.roots)
		}
		ok, err := j.links.HasLink(context.Background(), j.linkSet, state.DevIno{Dev: in.Dev, Ino: in.Ino})
		return err != nil || ok
	}
}

func (d *Daemon) emitState(j *job, now time.Time) {
	s := d.status(j, now)
	d.hub.send(Event{Time: now.UTC(), Type: EventState, Job: j.name(), Status: &s})
}

// status describes a job (the caller holds d.mu).
func (d *Daemon) status(j *job, now time.Time) JobStatus {
	name := j.name()
	st, _ := d.sched.State(name)
	s := JobStatus{Name: name, Repository: j.cfg.Repository, Paths: j.cfg.Paths, Paused: st.Paused, Running: st.Running,
		Failures: st.Failures, LastError: j.info.LastError, LastBackup: j.info.LastBackup, Verify: j.info.Verify,
		LastForget: j.info.LastForget, Alerting: j.rpAlerted, Counters: j.counters, UnprotectedWhy: st.DirtyWhy}
	s.Counters.ByMode = maps(j.counters.ByMode)
	s.RecoveryPoint = d.sched.RecoveryPoint(name, now).Seconds()
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	if !st.DirtySince.IsZero() {
		s.UnprotectedSince = opt(st.DirtySince)
	}
	if st.Running != "" {
		s.RunningSince = opt(st.RunStarted)
	}
	s.LastSuccess = opt(st.LastSuccess)
	if st.Failures > 0 {
		s.RetryAt = opt(st.RetryAt)
	}
	if at, ok := d.sched.NextRun(name, now); ok {
		s.NextRun = opt(at)
	}
	s.NextFullScan, s.FullScanIn, s.FullScanNote = j.fullScanStatus(now)
	switch {
	case st.Running != "":
		s.State = "running"
	case st.Paused:
		s.State = "paused"
	case st.Failures > 0:
		s.State = "failing"
	case !st.DirtySince.IsZero():
		s.State = "pending"
	default:
		s.State = "idle"
	}
	return s
}

func maps(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Jobs describes every job, sorted by name.
func (d *Daemon) Jobs() []JobStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now()
	out := []JobStatus{}
	for _, name := range d.sched.Jobs() {
		out = append(out, d.status(d.jobs[name], now))
	}
	return out
}

// Job describes one job.
func (d *Daemon) Job(name string) (JobStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	j := d.jobs[name]
	if j == nil {
		return JobStatus{}, fmt.Errorf("%w: %q", ErrNoJob, name)
	}
	return d.status(j, d.clock.Now()), nil
}

// Status describes the daemon.
func (d *Daemon) Status() DaemonStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	running := 0
	for _, name := range d.sched.Jobs() {
		if st, _ := d.sched.State(name); st.Running != "" {
			running++
		}
	}
	return DaemonStatus{PID: os.Getpid(), Started: d.started.UTC(), Version: d.opt.Version, ConfigFile: d.cfg.File, StateDir: d.stateDir,
		WatcherUp: d.feed.up, WatcherSource: d.feed.kind, WatcherNote: d.feed.note, Running: running, MaxParallel: d.cfg.Server.MaxParallel}
}

// Config is the configuration the daemon runs with.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// BackupNow asks for a backup of the job as soon as it is idle and a slot
// is free, even while paused or failing.
func (d *Daemon) BackupNow(name string) error {
	d.mu.Lock()
	ok := d.sched.Request(name)
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoJob, name)
	}
	d.logf(name, "info", "backup requested")
	d.signal()
	return nil
}

// Pause stops (paused false: resumes) the job's automatic operations. A
// running operation goes on.
func (d *Daemon) Pause(name string, paused bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	j := d.jobs[name]
	if j == nil || !d.sched.Pause(name, paused) {
		return fmt.Errorf("%w: %q", ErrNoJob, name)
	}
	d.persist(name)
	if paused {
		d.logf(name, "info", "paused")
	} else {
		d.logf(name, "info", "resumed")
	}
	d.emitState(j, d.clock.Now())
	d.signal()
	return nil
}

// Operations lists the operation log, newest first.
func (d *Daemon) Operations(ctx context.Context, job string, before int64, limit int) ([]Operation, error) {
	if job != "" {
		d.mu.Lock()
		_, ok := d.jobs[job]
		d.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNoJob, job)
		}
	}
	return d.st.ops(ctx, job, before, limit)
}

// Snapshots lists the job's snapshots in its repository, oldest first.
func (d *Daemon) Snapshots(ctx context.Context, name string) ([]app.SnapshotInfo, error) {
	d.mu.Lock()
	j := d.jobs[name]
	d.mu.Unlock()
	if j == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoJob, name)
	}
	r, err := app.Open(ctx, d.appOptions(ctx, j.cfg))
	if err != nil {
		return nil, openError(j.cfg, err)
	}
	defer r.Close()
	groups, err := r.Snapshots(ctx, app.SnapshotsOptions{Filter: snapshot.Filter{Hosts: []string{j.host}, Paths: j.roots}}, nil)
	if err != nil {
		return nil, err
	}
	out := []app.SnapshotInfo{}
	for _, g := range groups {
		out = append(out, g.Snapshots...)
	}
	return out, nil
}

// Reload applies a new configuration. A job that cannot be prepared (an
// exclude file that cannot be read) refuses the whole configuration, and
// the old one stays. Jobs keep their state; running operations finish
// with the settings they started with. The state and cache directories
// and the watcher's source change only at a restart. It returns what
// changed, as config.Diff says it.
func (d *Daemon) Reload(ctx context.Context, cfg *config.Config) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	diff := config.Diff(d.cfg, cfg)
	prepared := map[string]*job{}
	for _, jc := range cfg.Jobs {
		j, err := newJob(jc, d.stateDir, d.cacheRoot)
		if err != nil {
			return nil, err
		}
		prepared[jc.Name] = j
	}
	now := d.clock.Now()
	for name := range d.jobs {
		if cfg.Job(name) == nil {
			d.jobs[name].closeLinks()
			d.sched.RemoveJob(name)
			delete(d.jobs, name)
			d.logf(name, "info", "removed from the configuration")
		}
	}
	aliveAt := now
	for _, jc := range cfg.Jobs {
		old := d.jobs[jc.Name]
		if old == nil {
			if err := d.addJob(ctx, jc, now, aliveAt, "added to the configuration"); err != nil {
				d.logf(jc.Name, "error", "%v", err)
			}
			continue
		}
		nj := prepared[jc.Name]
		old.closeLinks()
		nj.epoch, nj.seen, nj.info, nj.counters = old.epoch, old.seen, old.info, old.counters
		nj.rpAlerted, nj.failAlerted, nj.settledOnce, nj.opID = old.rpAlerted, old.failAlerted, old.settledOnce, old.opID
		d.jobs[jc.Name] = nj
		d.sched.AddJob(jc.Name, nj.timing(), JobState{}, now)
		if !slices.Equal(old.roots, nj.roots) || !slices.Equal(old.cfg.Exclude, nj.cfg.Exclude) {
			d.changed(nj, now, "paths or excludes changed")
		}
	}
	d.sched.SetMaxParallel(cfg.Server.MaxParallel)
	// What only a restart changes stays as it is, and says so in diff.
	cfg.Server.StateDir, cfg.Server.CacheDir, cfg.Server.Inotify = d.cfg.Server.StateDir, d.cfg.Server.CacheDir, d.cfg.Server.Inotify
	d.cfg = cfg
	d.restartWatcher()
	d.signal()
	return diff, nil
}

// watchRoots are the roots of every job, nested ones dropped.
func (d *Daemon) watchRoots() []string {
	var paths []string
	for _, j := range d.jobs {
		paths = append(paths, j.roots...)
	}
	if len(paths) == 0 {
		return nil
	}
	roots, err := changes.NormalizeRoots(paths)
	if err != nil {
		return nil
	}
	sort.Strings(roots)
	return roots
}

// restartWatcher (re)starts the in-process watcher when the roots it
// must watch changed (the caller holds d.mu). A restarted watcher begins
// a new journal epoch, so every job's next backup scans fully.
func (d *Daemon) restartWatcher() {
	roots := d.watchRoots()
	if d.watch.done != nil && slices.Equal(roots, d.watch.roots) {
		return
	}
	d.stopWatcher()
	if len(roots) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.watch.roots, d.watch.cancel, d.watch.done = roots, cancel, done
	inotify := d.cfg.Server.Inotify
	go func() {
		defer close(done)
		d.watchLoop(ctx, roots, inotify)
	}()
}

// watcherStopWait bounds the wait for the watcher to stop (it stops within
// a second or two whatever it is doing).
const watcherStopWait = 5 * time.Second

func (d *Daemon) stopWatcher() {
	if d.watch.done == nil {
		return
	}
	d.watch.cancel()
	select {
	case <-d.watch.done:
	case <-time.After(watcherStopWait):
		d.logf("", "warning", "the change watcher did not stop within %s", watcherStopWait)
	}
	d.watch.done, d.watch.roots = nil, nil
}

// watchLoop runs the watcher, restarting it after failures with a growing
// pause. While another process holds the state directory (a `tidemark
// watch`), the daemon follows that watcher's journal instead.
func (d *Daemon) watchLoop(ctx context.Context, roots []string, inotify bool) {
	wait := 5 * time.Second
	for {
		began := time.Now()
		err := app.Watch(ctx, roots, app.WatchOptions{StateDir: d.stateDir, ForceInotify: inotify, Events: func(ev app.Event) {
			if l, ok := ev.(app.Log); ok {
				d.logf("", "info", "watcher: %s", l.Message)
			}
		}})
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			wait = 5 * time.Second
		}
		d.logf("", "error", "watcher stopped: %v; restarting in %s (backups scan fully meanwhile)", err, wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Minute)
	}
}

// shutdown lets running operations finish within the stop timeout,
// abandons the rest, stops the watcher and records the state.
func (d *Daemon) shutdown() error {
	d.mu.Lock()
	d.stopping = true
	timeout := d.cfg.Server.StopTimeout
	running := len(d.cancels)
	d.mu.Unlock()
	if running > 0 {
		d.logf("", "info", "stopping: waiting up to %s for %d running operations", timeout, running)
		if !waitFor(&d.ops, timeout) {
			d.logf("", "warning", "stopping: abandoning the running operations")
			d.opCancel()
			if !waitFor(&d.ops, 10*time.Second) {
				d.logf("", "error", "stopping: operations still running after being abandoned")
			}
		}
	}
	d.opCancel()
	d.mu.Lock()
	d.stopWatcher()
	d.mu.Unlock()
	waitFor(&d.bg, alertTimeout/3)
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, j := range d.jobs {
		d.persist(name)
		j.closeLinks()
	}
	if err := d.st.setAlive(context.Background(), d.clock.Now()); err != nil {
		return err
	}
	d.logf("", "info", "stopped")
	return nil
}

// Close closes the daemon database. Run must have returned.
func (d *Daemon) Close() error {
	d.opCancel()
	return d.st.close()
}

// waitFor waits for wg at most d; it reports whether wg finished.
func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
