package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// fakeClock is the injectable clock of these tests.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time                    { return c.t }
func (c *fakeClock) advance(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

var testTiming = Timing{Settle: 10 * time.Second, MinInterval: time.Minute, MaxDelay: 5 * time.Minute, SafetyNet: 24 * time.Hour,
	Retry: 30 * time.Second, RetryMax: 10 * time.Minute}

// newTestScheduler returns a scheduler with the jobs named, each last
// backed up a day ago with no change since (a safety net due in an hour).
func newTestScheduler(c *fakeClock, parallel int, names ...string) *Scheduler {
	s := NewScheduler(parallel)
	for _, n := range names {
		s.AddJob(n, testTiming, JobState{LastStart: c.Now().Add(-23 * time.Hour), LastSuccess: c.Now().Add(-23 * time.Hour)}, c.Now())
	}
	return s
}

func starts(ss []Start) string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s %s: %s", s.Job, s.Kind, s.Reason))
	}
	return strings.Join(out, "; ")
}

func wantStarts(t *testing.T, got []Start, want ...string) {
	t.Helper()
	var lines []string
	for _, s := range got {
		lines = append(lines, s.Job+" "+string(s.Kind))
	}
	if strings.Join(lines, ", ") != strings.Join(want, ", ") {
		t.Fatalf("started %q, want %q", starts(got), strings.Join(want, ", "))
	}
}

func TestSettleAndMinInterval(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 2, "home")
	t0 := c.Now()
	s.Changed("home", t0, "files changed")
	s.Changed("home", c.advance(5*time.Second), "files changed")
	if got := s.NextWake(); !got.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("next wake %v, want settle after the last change", got.Sub(t0))
	}
	wantStarts(t, s.Due(c.advance(9*time.Second)))
	got := s.Due(c.advance(time.Second))
	wantStarts(t, got, "home backup")
	if !strings.Contains(got[0].Reason, "changes settled (files changed)") {
		t.Errorf("reason %q", got[0].Reason)
	}
	if rp := s.RecoveryPoint("home", c.Now()); rp != 15*time.Second {
		t.Errorf("recovery point while backing up: %v", rp)
	}
	wantStarts(t, s.Due(c.Now())) // one operation per job
	s.Finished("home", c.advance(2*time.Second), Outcome{OK: true, Pending: PendingNone})
	if rp := s.RecoveryPoint("home", c.Now()); rp != 0 {
		t.Errorf("recovery point after the backup: %v", rp)
	}
	// A change right after: settled 10 s later, but min_interval holds it
	// until a minute after the last start.
	lastStart := c.Now().Add(-2 * time.Second)
	s.Changed("home", c.advance(time.Second), "files changed")
	wantStarts(t, s.Due(c.advance(20*time.Second)))
	if got := s.NextWake(); !got.Equal(lastStart.Add(time.Minute)) {
		t.Fatalf("next wake %v after the last start, want 1m", got.Sub(lastStart))
	}
	c.t = lastStart.Add(time.Minute)
	wantStarts(t, s.Due(c.Now()), "home backup")
}

func TestMaxDelayUnderChurn(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 1, "home")
	t0 := c.Now()
	var started time.Time
	for i := 0; i < 100 && started.IsZero(); i++ {
		s.Changed("home", c.Now(), "files changed")
		if got := s.Due(c.Now()); len(got) > 0 {
			if !strings.HasPrefix(got[0].Reason, "max delay reached") {
				t.Fatalf("reason %q", got[0].Reason)
			}
			started = c.Now()
		}
		c.advance(5 * time.Second) // never quiet for 10 s
	}
	if started.Sub(t0) != 5*time.Minute {
		t.Fatalf("under churn the backup started after %v, want max_delay 5m", started.Sub(t0))
	}
	// Changes during the backup stay unprotected: the next backup is due
	// max_delay after the first of them.
	s.Changed("home", c.Now(), "files changed")
	firstDuring := c.Now()
	s.Changed("home", c.advance(time.Second), "files changed")
	s.Finished("home", c.advance(time.Second), Outcome{OK: true, Pending: PendingYes})
	if st, _ := s.State("home"); !st.DirtySince.Equal(firstDuring) {
		t.Fatalf("dirty since %v, want the first change during the run %v", st.DirtySince, firstDuring)
	}
	if got := s.NextWake(); !got.Equal(started.Add(time.Minute)) {
		t.Errorf("next wake %v after the start, want min_interval", got.Sub(started))
	}
}

func TestPendingAfterBackup(t *testing.T) {
	for _, tc := range []struct {
		name         string
		changeDuring bool
		pending      Pending
		wantDirty    bool
		wantAtStart  bool
	}{
		{"journal says nothing after the cursor", true, PendingNone, false, false},
		{"journal says changes after the cursor", true, PendingYes, true, false},
		{"journal: a change between the last look and the fence", false, PendingYes, true, true},
		{"no journal, changes seen during the run", true, PendingUnknown, true, false},
		{"no journal, nothing seen", false, PendingUnknown, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClock()
			s := newTestScheduler(c, 1, "a")
			s.Request("a")
			wantStarts(t, s.Due(c.Now()), "a backup")
			runStart := c.Now()
			if tc.changeDuring {
				s.Changed("a", c.advance(time.Second), "files changed")
			}
			during := c.Now()
			s.Finished("a", c.advance(time.Second), Outcome{OK: true, Pending: tc.pending})
			st, _ := s.State("a")
			if st.DirtySince.IsZero() == tc.wantDirty {
				t.Fatalf("dirty since %v, want dirty %v", st.DirtySince, tc.wantDirty)
			}
			want := during
			if tc.wantAtStart {
				want = runStart
			}
			if tc.wantDirty && !st.DirtySince.Equal(want) {
				t.Errorf("dirty since %v, want %v", st.DirtySince, want)
			}
		})
	}
}

func TestSafetyNet(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 1, "home")
	wantStarts(t, s.Due(c.advance(59*time.Minute)))
	got := s.Due(c.advance(time.Minute))
	wantStarts(t, got, "home backup")
	if !strings.HasPrefix(got[0].Reason, "safety net") {
		t.Errorf("reason %q", got[0].Reason)
	}
	s.Finished("home", c.advance(time.Minute), Outcome{OK: true, Pending: PendingNone})
	if got := s.NextWake(); !got.Equal(c.Now().Add(-time.Minute).Add(24 * time.Hour)) {
		t.Errorf("next safety net at %v", got)
	}
}

// TestSuspendStartsOnce: a machine asleep for ten hours (or a clock set
// forward) wakes to one backup per job, not one per missed interval.
func TestSuspendStartsOnce(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 4, "a", "b", "c")
	s.Changed("a", c.Now(), "files changed")
	c.advance(10 * time.Hour)
	got := s.Due(c.Now())
	wantStarts(t, got, "a backup", "b backup", "c backup")
	if !strings.HasPrefix(got[0].Reason, "changes settled") || !strings.HasPrefix(got[1].Reason, "safety net") {
		t.Errorf("reasons: %s", starts(got))
	}
	for _, n := range []string{"a", "b", "c"} {
		s.Finished(n, c.advance(time.Second), Outcome{OK: true, Pending: PendingNone})
	}
	for i := 0; i < 120; i++ {
		wantStarts(t, s.Due(c.advance(time.Minute)))
	}
}

// TestClockBackwards: a clock set back an hour neither holds jobs for an
// hour nor loses what they were waiting for.
func TestClockBackwards(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 1, "home")
	s.Request("home")
	wantStarts(t, s.Due(c.Now()), "home backup")
	s.Finished("home", c.advance(time.Second), Outcome{OK: true, Pending: PendingNone})
	s.Changed("home", c.advance(5*time.Second), "files changed")
	c.advance(-time.Hour)
	wantStarts(t, s.Due(c.Now()))
	if rp := s.RecoveryPoint("home", c.Now()); rp != 0 {
		t.Errorf("recovery point right after the change: %v", rp)
	}
	// 10 s of settle, and min_interval a minute after the start (6 s ago).
	wantStarts(t, s.Due(c.advance(53*time.Second)))
	wantStarts(t, s.Due(c.advance(time.Second)), "home backup")
}

func TestParallelBound(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 2, "a", "b", "c")
	s.Changed("c", c.Now(), "files changed")
	s.Changed("a", c.advance(time.Second), "files changed")
	s.Changed("b", c.advance(time.Second), "files changed")
	wantStarts(t, s.Due(c.advance(time.Minute)), "c backup", "a backup") // oldest changes first
	wantStarts(t, s.Due(c.advance(time.Minute)))
	s.Request("a") // a is running: the request waits for it
	s.Finished("c", c.advance(time.Second), Outcome{OK: true, Pending: PendingNone})
	wantStarts(t, s.Due(c.Now()), "b backup")
	s.Finished("a", c.advance(time.Second), Outcome{OK: true, Pending: PendingNone})
	got := s.Due(c.Now())
	wantStarts(t, got, "a backup")
	if got[0].Reason != "requested" {
		t.Errorf("reason %q", got[0].Reason)
	}
	s.SetMaxParallel(3)
	s.Changed("c", c.Now(), "files changed")
	wantStarts(t, s.Due(c.advance(time.Minute)), "c backup")
}

func TestBackoff(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 1, "a")
	s.Changed("a", c.Now(), "files changed")
	wantStarts(t, s.Due(c.advance(10*time.Second)), "a backup")
	failedAt := c.Now()
	var waits []time.Duration
	for i := 0; i < 7; i++ {
		s.Finished("a", c.Now(), Outcome{OK: false})
		prev := c.Now()
		for len(s.Due(c.advance(time.Second))) == 0 {
		}
		waits = append(waits, c.Now().Sub(prev))
	}
	// min_interval (1m) bounds the first retries, then the doubling shows.
	want := []time.Duration{time.Minute, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if rp := s.RecoveryPoint("a", c.Now()); rp < 30*time.Minute {
		t.Errorf("recovery point %v while failing", rp)
	}
	rec := s.Finished("a", c.advance(time.Second), Outcome{OK: true, Pending: PendingNone})
	if rec == nil || rec.Failures != 7 || !rec.Since.Equal(failedAt) {
		t.Errorf("recovery %+v, want 7 failures since %v", rec, failedAt)
	}
	if st, _ := s.State("a"); st.Failures != 0 || !st.RetryAt.IsZero() {
		t.Errorf("state after success: %+v", st)
	}
}

// TestFailedSafetyNetRetries: a failed backup with no changes pending
// (a safety net) is retried after the backoff, not a day later.
func TestFailedSafetyNetRetries(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 1, "a")
	wantStarts(t, s.Due(c.advance(time.Hour)), "a backup")
	s.Finished("a", c.advance(time.Second), Outcome{OK: false})
	wantStarts(t, s.Due(c.advance(58*time.Second)))
	got := s.Due(c.advance(time.Second))
	wantStarts(t, got, "a backup")
	if !strings.HasPrefix(got[0].Reason, "retry") {
		t.Errorf("reason %q", got[0].Reason)
	}
}

func TestPauseAndRequest(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 1, "a")
	s.Pause("a", true)
	s.Changed("a", c.Now(), "files changed")
	wantStarts(t, s.Due(c.advance(2*time.Hour)))
	if rp := s.RecoveryPoint("a", c.Now()); rp != 2*time.Hour {
		t.Errorf("a paused job's changes age: %v", rp)
	}
	s.Request("a")
	wantStarts(t, s.Due(c.Now()), "a backup")
	s.Finished("a", c.advance(time.Second), Outcome{OK: true, Pending: PendingNone})
	s.Changed("a", c.Now(), "files changed")
	wantStarts(t, s.Due(c.advance(time.Hour)))
	s.Pause("a", false)
	wantStarts(t, s.Due(c.Now()), "a backup")
	if s.Request("nope") || s.Pause("nope", true) {
		t.Error("unknown job accepted")
	}
}

func TestMaintenance(t *testing.T) {
	c := newFakeClock()
	s := NewScheduler(1)
	tm := testTiming
	tm.Maintenance = 24 * time.Hour
	s.AddJob("a", tm, JobState{LastStart: c.Now(), LastSuccess: c.Now()}, c.Now())
	// First forget a whole period after the job was first seen.
	if got := s.NextWake(); !got.Equal(c.Now().Add(24 * time.Hour)) {
		t.Fatalf("next wake %v", got.Sub(c.Now()))
	}
	// Both due: the backup first, then forget.
	s.Changed("a", c.advance(24*time.Hour), "files changed")
	wantStarts(t, s.Due(c.advance(time.Minute)), "a backup")
	s.Finished("a", c.advance(time.Second), Outcome{OK: true, Pending: PendingNone})
	got := s.Due(c.Now())
	wantStarts(t, got, "a forget")
	s.Finished("a", c.advance(time.Second), Outcome{OK: false})
	wantStarts(t, s.Due(c.advance(29*time.Second)))
	wantStarts(t, s.Due(c.advance(time.Second)), "a forget")
	s.Finished("a", c.advance(time.Second), Outcome{OK: true})
	if st, _ := s.State("a"); !st.LastMaint.Equal(c.Now()) || st.MaintFailures != 0 {
		t.Errorf("state %+v", st)
	}
}

func TestJobsChange(t *testing.T) {
	c := newFakeClock()
	s := newTestScheduler(c, 1, "a", "b")
	s.Changed("a", c.Now(), "files changed")
	tm := testTiming
	tm.Settle = time.Minute
	s.AddJob("a", tm, JobState{}, c.Now()) // a reload: new timing, same state
	wantStarts(t, s.Due(c.advance(30*time.Second)))
	if st, _ := s.State("a"); st.DirtySince.IsZero() {
		t.Error("reload lost the job's state")
	}
	s.RemoveJob("b")
	if fmt.Sprint(s.Jobs()) != "[a]" {
		t.Errorf("jobs %v", s.Jobs())
	}
	s.Changed("b", c.Now(), "x") // ignored
	if _, ok := s.State("b"); ok {
		t.Error("removed job has state")
	}
}

// TestSimulation drives the scheduler through random histories of changes,
// run times, failures and clock jumps forward (suspends), and checks what
// the daemon promises: one operation per job, the parallel bound,
// min_interval between automatic backups, and every change in a
// successful backup within max_delay plus the time backups take.
func TestSimulation(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		nJobs := rapid.IntRange(1, 4).Draw(rt, "jobs")
		parallel := rapid.IntRange(1, 4).Draw(rt, "parallel")
		settle := time.Duration(rapid.IntRange(0, 20).Draw(rt, "settle")) * time.Second
		minInt := time.Duration(rapid.IntRange(1, 60).Draw(rt, "min_interval")) * time.Second
		maxDelay := max(minInt, settle) + time.Duration(rapid.IntRange(0, 120).Draw(rt, "max_delay_extra"))*time.Second
		opMax := rapid.IntRange(1, 30).Draw(rt, "op_max")
		failPct := rapid.IntRange(0, 30).Draw(rt, "fail_pct")
		tm := Timing{Settle: settle, MinInterval: minInt, MaxDelay: maxDelay, SafetyNet: time.Hour, Retry: 5 * time.Second, RetryMax: 40 * time.Second}

		c := newFakeClock()
		s := NewScheduler(parallel)
		type run struct {
			start, end time.Time
			fail       bool
		}
		names := make([]string, nJobs)
		running := map[string]*run{}
		lastAuto := map[string]time.Time{}
		// Changes not yet in a successful backup, with the time they have
		// waited while the machine was awake.
		type change struct {
			at  time.Time
			age time.Duration
		}
		changes := map[string][]*change{}
		for i := range names {
			names[i] = fmt.Sprintf("j%d", i)
			s.AddJob(names[i], tm, JobState{LastStart: c.Now(), LastSuccess: c.Now()}, c.Now())
		}
		// The bound on a change's wait: max_delay, a running backup to
		// finish, waiting for a slot (the other jobs' backups) and the
		// backup itself.
		opDur := time.Duration(opMax) * time.Second
		bound := maxDelay + opDur*time.Duration(2+(nJobs+parallel-1)/parallel) + 2*time.Second
		steps := rapid.IntRange(50, 600).Draw(rt, "steps")
		for step := 0; step < steps; step++ {
			now := c.advance(time.Second)
			for _, n := range names {
				for _, ch := range changes[n] {
					ch.age += time.Second
				}
			}
			if rapid.IntRange(0, 199).Draw(rt, "suspend") == 0 {
				now = c.advance(time.Duration(rapid.IntRange(1, 600).Draw(rt, "suspend_minutes")) * time.Minute)
			}
			for _, n := range names {
				if r := running[n]; r != nil && !now.Before(r.end) {
					pending := PendingNone
					if !r.fail {
						var keep []*change
						for _, ch := range changes[n] {
							if !ch.at.Before(r.start) {
								keep = append(keep, ch)
								pending = PendingYes
							}
						}
						changes[n] = keep
					}
					s.Finished(n, now, Outcome{OK: !r.fail, Pending: pending})
					delete(running, n)
				}
			}
			for _, n := range names {
				if rapid.IntRange(0, 9).Draw(rt, "change_"+n) == 0 {
					changes[n] = append(changes[n], &change{at: now})
					s.Changed(n, now, "files changed")
				}
			}
			if rapid.IntRange(0, 99).Draw(rt, "request") == 0 {
				s.Request(names[0])
			}
			for _, st := range s.Due(now) {
				if running[st.Job] != nil {
					rt.Fatalf("%s: second operation while one runs", st.Job)
				}
				if st.Kind != OpBackup {
					rt.Fatalf("unexpected %s", st.Kind)
				}
				if st.Reason != "requested" {
					if last, ok := lastAuto[st.Job]; ok && now.Sub(last) < minInt {
						rt.Fatalf("%s: automatic backup %v after the last one, min_interval %v", st.Job, now.Sub(last), minInt)
					}
				}
				lastAuto[st.Job] = now
				d := time.Duration(rapid.IntRange(1, opMax).Draw(rt, "duration")) * time.Second
				fail := rapid.IntRange(0, 99).Draw(rt, "fail") < failPct
				running[st.Job] = &run{start: now, end: now.Add(d), fail: fail}
			}
			if len(running) > parallel {
				rt.Fatalf("%d operations running, bound %d", len(running), parallel)
			}
			if failPct > 0 {
				continue
			}
			for _, n := range names {
				for _, ch := range changes[n] {
					if ch.age > bound {
						rt.Fatalf("%s: a change still unprotected after %v awake (bound %v)", n, ch.age, bound)
					}
				}
			}
		}
	})
}
