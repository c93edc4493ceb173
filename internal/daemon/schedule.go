package daemon

import (
	"sort"
	"time"
)

// OpKind is the kind of an operation the scheduler starts.
type OpKind string

// Operation kinds.
const (
	OpBackup OpKind = "backup"
	// OpForget applies the retention policy, and prunes when the job says
	// so.
	OpForget OpKind = "forget"
)

// Timing is a job's schedule.
type Timing struct {
	// Settle: back up once changes have been quiet this long.
	Settle time.Duration
	// MinInterval: no backup starts sooner than this after the last one
	// started.
	MinInterval time.Duration
	// MaxDelay: under constant churn, back up this long after the oldest
	// change not yet in a snapshot, settled or not.
	MaxDelay time.Duration
	// SafetyNet: back up this long after the last backup even without
	// changes (0: never).
	SafetyNet time.Duration
	// Retry is the wait after a first failure, doubled after each further
	// one up to RetryMax.
	Retry, RetryMax time.Duration
	// Maintenance is how often forget (and prune) run (0: never).
	Maintenance time.Duration
}

// JobState is what the scheduler knows of one job. The daemon persists it,
// so that a restart neither repeats a backup that just ran nor forgets
// how old the unprotected changes are.
type JobState struct {
	// DirtySince is when the oldest change not yet in a snapshot was seen
	// (zero: none known). DirtyWhy says what it was.
	DirtySince time.Time `json:"dirty_since"`
	DirtyWhy   string    `json:"dirty_why,omitempty"`
	// LastChange is when a change was last seen: the settle timer.
	LastChange time.Time `json:"last_change"`
	// LastStart and LastSuccess are the last backup's start and the end
	// of the last successful one.
	LastStart   time.Time `json:"last_start"`
	LastSuccess time.Time `json:"last_success"`
	// LastMaint is when forget last ran (or the job was first seen).
	LastMaint time.Time `json:"last_maint"`
	// Failures counts backups failed in a row; RetryAt is when the next
	// may start. RetryPending asks for one even without changes (the
	// failed backup was a safety net or requested).
	Failures     int       `json:"failures"`
	FailingSince time.Time `json:"failing_since"`
	RetryAt      time.Time `json:"retry_at"`
	RetryPending bool      `json:"retry_pending,omitempty"`
	// MaintFailures and MaintRetryAt are the same for forget.
	MaintFailures int       `json:"maint_failures"`
	MaintRetryAt  time.Time `json:"maint_retry_at"`
	// Paused jobs start nothing on their own; a requested backup still
	// runs.
	Paused    bool `json:"paused,omitempty"`
	Requested bool `json:"requested,omitempty"`
	// Running is the operation in progress ("" for none), started at
	// RunStarted; ChangedDuringRun is the first change seen since.
	Running          OpKind    `json:"running,omitempty"`
	RunStarted       time.Time `json:"run_started"`
	ChangedDuringRun time.Time `json:"changed_during_run"`
}

// Start is the decision to start an operation now.
type Start struct {
	Job    string
	Kind   OpKind
	Reason string
}

// Pending says what a finished backup leaves unprotected, as the change
// journal tells it (changes recorded after the backup's cursor).
type Pending int

// Pending values.
const (
	// PendingUnknown: the journal could not tell (no cursor); the
	// scheduler goes by the changes it saw during the run.
	PendingUnknown Pending = iota
	// PendingNone: nothing changed after the backup's cursor.
	PendingNone
	// PendingYes: something did.
	PendingYes
)

// Outcome is how an operation ended.
type Outcome struct {
	OK bool
	// Abandoned: the daemon stopped it (it is neither a failure nor a
	// success, and what it was for is still to do).
	Abandoned bool
	Pending   Pending
}

// Recovery describes a success after failures, for the log.
type Recovery struct {
	Failures int
	Since    time.Time
}

// Scheduler decides when each job's operations start. It is pure logic:
// every call is given the time, so tests drive it with a fake clock, and
// it keeps no timers. It is not safe for concurrent use; the daemon holds
// a lock around it.
//
// Wall-clock time is what it compares (the daemon strips the monotonic
// reading), so that a suspended machine's sleep counts as time passed: a
// safety net due during a suspend runs once on resume. Nothing is
// queued, and what is due is worked out afresh from the job's state at
// each call, so a long suspend or a clock jumping forward starts at most
// one backup per job, never a burst. A clock jumping backwards shifts
// every remembered time by the jump, so intervals keep their length and
// no run is skipped.
type Scheduler struct {
	maxParallel int
	jobs        map[string]*schedJob
	last        time.Time
}

type schedJob struct {
	t  Timing
	st JobState
}

// NewScheduler returns a scheduler that runs at most maxParallel
// operations at once.
func NewScheduler(maxParallel int) *Scheduler {
	s := &Scheduler{jobs: map[string]*schedJob{}}
	s.SetMaxParallel(maxParallel)
	return s
}

// SetMaxParallel changes the bound on operations running at once.
func (s *Scheduler) SetMaxParallel(n int) {
	if n < 1 {
		n = 1
	}
	s.maxParallel = n
}

// AddJob adds a job with its remembered state, or replaces the timing of
// a job already known (keeping its state). A job new to the scheduler
// whose forget never ran waits a whole Maintenance period first.
func (s *Scheduler) AddJob(name string, t Timing, st JobState, now time.Time) {
	s.observe(now)
	if j, ok := s.jobs[name]; ok {
		j.t = t
		return
	}
	st.Running, st.Requested = "", false
	if st.LastMaint.IsZero() {
		st.LastMaint = now
	}
	s.jobs[name] = &schedJob{t: t, st: st}
}

// RemoveJob forgets a job. An operation of it still running is not
// counted against the parallel bound any more.
func (s *Scheduler) RemoveJob(name string) { delete(s.jobs, name) }

// Jobs lists the jobs' names, sorted.
func (s *Scheduler) Jobs() []string {
	names := make([]string, 0, len(s.jobs))
	for n := range s.jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// State returns a job's state (false for an unknown job).
func (s *Scheduler) State(name string) (JobState, bool) {
	j, ok := s.jobs[name]
	if !ok {
		return JobState{}, false
	}
	return j.st, true
}

// Changed records a change of the job's files seen at now; why says what
// it was ("files changed", "tidemark run started", a journal gap).
func (s *Scheduler) Changed(name string, now time.Time, why string) {
	s.observe(now)
	j, ok := s.jobs[name]
	if !ok {
		return
	}
	j.st.LastChange = now
	if j.st.Running == OpBackup {
		// The running backup's cursor may or may not cover it: Finished
		// decides.
		if j.st.ChangedDuringRun.IsZero() {
			j.st.ChangedDuringRun = now
		}
		if j.st.DirtySince.IsZero() {
			j.st.DirtyWhy = why
		}
		return
	}
	if j.st.DirtySince.IsZero() {
		j.st.DirtySince, j.st.DirtyWhy = now, why
	}
}

// Request asks for a backup as soon as the job is idle and a slot is
// free, paused or not, failing or not.
func (s *Scheduler) Request(name string) bool {
	j, ok := s.jobs[name]
	if ok {
		j.st.Requested = true
	}
	return ok
}

// Pause stops (or, with false, resumes) the job's automatic operations.
func (s *Scheduler) Pause(name string, paused bool) bool {
	j, ok := s.jobs[name]
	if ok {
		j.st.Paused = paused
	}
	return ok
}

// RecoveryPoint is the age of the oldest change not yet in a snapshot (0
// when none is known).
func (s *Scheduler) RecoveryPoint(name string, now time.Time) time.Duration {
	j, ok := s.jobs[name]
	if !ok || j.st.DirtySince.IsZero() || now.Before(j.st.DirtySince) {
		return 0
	}
	return now.Sub(j.st.DirtySince)
}

// Due returns the operations to start now and marks them running: at most
// one per job, at most maxParallel running in all. Requested backups go
// first, then backups of the oldest unprotected changes, then safety nets
// and retries, then maintenance.
func (s *Scheduler) Due(now time.Time) []Start {
	s.observe(now)
	running := 0
	type cand struct {
		Start
		prio int
		at   time.Time
	}
	var cands []cand
	for name, j := range s.jobs {
		if j.st.Running != "" {
			running++
			continue
		}
		at, kind, reason, prio, ok := j.next(now)
		if ok && !at.After(now) {
			cands = append(cands, cand{Start{name, kind, reason}, prio, at})
		}
	}
	sort.Slice(cands, func(a, b int) bool {
		ca, cb := cands[a], cands[b]
		if ca.prio != cb.prio {
			return ca.prio < cb.prio
		}
		if !ca.at.Equal(cb.at) {
			return ca.at.Before(cb.at)
		}
		return ca.Job < cb.Job
	})
	var out []Start
	for _, c := range cands {
		if running >= s.maxParallel {
			break
		}
		j := s.jobs[c.Job]
		j.st.Running, j.st.RunStarted, j.st.ChangedDuringRun = c.Kind, now, time.Time{}
		if c.Kind == OpBackup {
			j.st.LastStart, j.st.Requested, j.st.RetryPending = now, false, false
		}
		running++
		out = append(out, c.Start)
	}
	return out
}

// NextWake is when the next operation becomes due if nothing changes
// (zero when none ever will): the daemon sleeps until then at most.
func (s *Scheduler) NextWake() time.Time {
	var best time.Time
	for _, j := range s.jobs {
		if j.st.Running != "" {
			continue
		}
		if at, _, _, _, ok := j.next(s.last); ok && (best.IsZero() || at.Before(best)) {
			best = at
		}
	}
	return best
}

// NextRun is when the job's next operation is due (now if it is already),
// if any is; false while one runs.
func (s *Scheduler) NextRun(name string, now time.Time) (time.Time, bool) {
	j, ok := s.jobs[name]
	if !ok || j.st.Running != "" {
		return time.Time{}, false
	}
	at, _, _, _, ok := j.next(now)
	if ok && at.Before(now) {
		at = now
	}
	return at, ok
}

// Priorities of Due.
const (
	prioRequested = iota
	prioChanges
	prioSafety
	prioMaint
)

// next is when the job's next operation is due, which, why, and its
// priority; ok is false when nothing is ever due (paused, or no safety net
// and no changes). A backup due by now goes before maintenance, whichever
// became due first.
func (j *schedJob) next(now time.Time) (at time.Time, kind OpKind, reason string, prio int, ok bool) {
	st, t := &j.st, j.t
	if st.Requested {
		return time.Time{}, OpBackup, "requested", prioRequested, true
	}
	if st.Paused {
		return time.Time{}, "", "", 0, false
	}
	switch {
	case !st.DirtySince.IsZero():
		settled := st.LastChange.Add(t.Settle)
		late := st.DirtySince.Add(t.MaxDelay)
		at, reason = settled, "changes settled"
		if late.Before(settled) {
			at, reason = late, "max delay reached"
		}
		if st.DirtyWhy != "" {
			reason += " (" + st.DirtyWhy + ")"
		}
		at = latest(at, st.LastStart.Add(t.MinInterval), st.RetryAt)
		kind, prio, ok = OpBackup, prioChanges, true
	case st.RetryPending:
		at, kind, reason, prio, ok = latest(st.RetryAt, st.LastStart.Add(t.MinInterval)), OpBackup, "retry after a failed backup", prioSafety, true
	case t.SafetyNet > 0:
		at, kind, reason, prio, ok = latest(st.LastStart.Add(t.SafetyNet), st.RetryAt), OpBackup, "safety net: no backup for "+t.SafetyNet.String(), prioSafety, true
	}
	if t.Maintenance > 0 {
		m := latest(st.LastMaint.Add(t.Maintenance), st.MaintRetryAt)
		if !ok || (m.Before(at) && at.After(now)) {
			at, kind, reason, prio, ok = m, OpForget, "retention schedule (every "+t.Maintenance.String()+")", prioMaint, true
		}
	}
	return at, kind, reason, prio, ok
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// Finished records the end of a job's running operation. For a backup
// that succeeded after failures it returns what the failures were.
func (s *Scheduler) Finished(name string, now time.Time, out Outcome) *Recovery {
	s.observe(now)
	j, ok := s.jobs[name]
	if !ok || j.st.Running == "" {
		return nil
	}
	st, t := &j.st, j.t
	kind := st.Running
	st.Running = ""
	if out.Abandoned {
		if kind == OpBackup {
			if st.DirtySince.IsZero() && !st.ChangedDuringRun.IsZero() {
				st.DirtySince = st.ChangedDuringRun
			}
			st.RetryPending = st.DirtySince.IsZero()
		}
		st.ChangedDuringRun = time.Time{}
		return nil
	}
	if kind == OpForget {
		if out.OK {
			st.LastMaint, st.MaintFailures, st.MaintRetryAt = now, 0, time.Time{}
		} else {
			st.MaintFailures++
			st.MaintRetryAt = now.Add(backoff(t, st.MaintFailures))
		}
		return nil
	}
	changed := st.ChangedDuringRun
	st.ChangedDuringRun = time.Time{}
	if !out.OK {
		if st.Failures == 0 {
			st.FailingSince = st.RunStarted
		}
		st.Failures++
		st.RetryAt = now.Add(backoff(t, st.Failures))
		if st.DirtySince.IsZero() {
			if changed.IsZero() {
				st.RetryPending = true
			} else {
				st.DirtySince = changed
			}
		}
		return nil
	}
	var rec *Recovery
	if st.Failures > 0 {
		rec = &Recovery{Failures: st.Failures, Since: st.FailingSince}
	}
	st.Failures, st.RetryAt, st.FailingSince, st.RetryPending = 0, time.Time{}, time.Time{}, false
	st.LastSuccess = now
	switch {
	case out.Pending == PendingYes && !changed.IsZero():
		st.DirtySince = changed
	case out.Pending == PendingYes:
		// Changed between the last look at the journal and the backup's
		// fence: no later than the start.
		st.DirtySince = st.RunStarted
	case out.Pending == PendingUnknown && !changed.IsZero():
		st.DirtySince = changed
	default:
		st.DirtySince, st.DirtyWhy = time.Time{}, ""
	}
	return rec
}

// backoff is the wait after n failures in a row.
func backoff(t Timing, n int) time.Duration {
	d := t.Retry
	if d <= 0 {
		d = time.Second
	}
	for i := 1; i < n && d < t.RetryMax; i++ {
		d *= 2
	}
	if t.RetryMax > 0 && d > t.RetryMax {
		d = t.RetryMax
	}
	return d
}

// observe notes the time of a call, and shifts every remembered time when
// the clock went backwards, so that a clock set back an hour does not
// hold every job for an hour.
func (s *Scheduler) observe(now time.Time) {
	if !s.last.IsZero() && now.Before(s.last) {
		d := now.Sub(s.last)
		for _, j := range s.jobs {
			j.st.shift(d)
		}
	}
	s.last = now
}

func (st *JobState) shift(d time.Duration) {
	for _, t := range []*time.Time{&st.DirtySince, &st.LastChange, &st.LastStart, &st.LastSuccess, &st.LastMaint,
		&st.FailingSince, &st.RetryAt, &st.MaintRetryAt, &st.RunStarted, &st.ChangedDuringRun} {
		if !t.IsZero() {
			*t = t.Add(d)
		}
	}
}
