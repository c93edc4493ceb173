package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/config"
	"github.com/tidemark/tidemark/internal/crypto"
)

// lockedClock is a fake clock the daemon's goroutines may read at once.
type lockedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *lockedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *lockedClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testDaemon opens a daemon on real repositories (one per job) and a real
// watcher, with a fake clock.
func testDaemon(t *testing.T, clock Clock, jobs ...string) (*Daemon, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("pw\n"), 0o600)
	srcs := map[string]string{}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[server]\nlisten = \"off\"\nstate_dir = %q\ncache_dir = %q\nmax_parallel = 4\n", filepath.Join(dir, "state"), filepath.Join(dir, "cache"))
	for _, name := range jobs {
		src, repo := filepath.Join(dir, "src-"+name), filepath.Join(dir, "repo-"+name)
		os.MkdirAll(src, 0o755)
		os.WriteFile(filepath.Join(src, "f"), []byte(name), 0o644)
		r, err := app.Init(context.Background(), app.Options{Repository: repo, Password: func() ([]byte, error) { return []byte("pw"), nil },
			CacheDir: filepath.Join(dir, "cache"), KDF: func() (crypto.KDFParams, error) {
				p, err := crypto.DefaultKDFParams()
				p.Time, p.Memory, p.Threads = 1, 8*1024, 1
				return p, err
			}})
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		srcs[name] = src
		fmt.Fprintf(&cfg, "[jobs.%s]\nrepository = %q\npassword_file = %q\npaths = [%q]\n", name, repo, pw, src)
		fmt.Fprintf(&cfg, "[jobs.%s.trigger]\nsettle = \"1s\"\nmin_interval = \"1m\"\nmax_delay = \"5m\"\nsafety_net = \"1h\"\n", name)
	}
	c, err := config.Parse("test.toml", []byte(cfg.String()))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(context.Background(), Options{Config: c, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.shutdown()
		d.Close()
	})
	d.mu.Lock()
	d.restartWatcher()
	d.mu.Unlock()
	waitReal(t, 10*time.Second, "the watcher records", func() bool {
		d.step()
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.feed.up
	})
	return d, srcs
}

func waitReal(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stepStarts runs one step and returns the operations it started, after
// they finished.
func stepStarts(t *testing.T, d *Daemon) []Operation {
	t.Helper()
	before, err := d.st.ops(context.Background(), "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	d.step()
	d.ops.Wait()
	after, err := d.st.ops(context.Background(), "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	started := after[:len(after)-len(before)]
	for _, op := range started {
		if op.Outcome != OutcomeOK {
			t.Fatalf("operation failed: %+v", op)
		}
	}
	return started
}

func jobsOf(ops []Operation) string {
	var names []string
	for i := len(ops) - 1; i >= 0; i-- {
		names = append(names, ops[i].Job+" "+string(ops[i].Kind))
	}
	return strings.Join(names, ", ")
}

// TestDaemonClockJumps runs real backups under a fake clock: a suspend of
// ten hours starts one safety-net backup per job, not a burst; a clock set
// back an hour neither holds a pending backup for an hour nor repeats one.
func TestDaemonClockJumps(t *testing.T) {
	clock := &lockedClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d, srcs := testDaemon(t, clock, "a", "b")

	// The startup backups, once settled.
	if got := jobsOf(stepStarts(t, d)); got != "" {
		t.Fatalf("started before settling: %s", got)
	}
	clock.advance(2 * time.Second)
	if got := jobsOf(stepStarts(t, d)); got != "a backup, b backup" {
		t.Fatalf("startup: %q", got)
	}
	for i := 0; i < 5; i++ {
		clock.advance(10 * time.Second)
		if got := jobsOf(stepStarts(t, d)); got != "" {
			t.Fatalf("after the startup backups: %q", got)
		}
	}

	// Ten hours asleep: one safety-net backup each.
	clock.advance(10 * time.Hour)
	ops := stepStarts(t, d)
	if got := jobsOf(ops); got != "a backup, b backup" || !strings.HasPrefix(ops[0].Reason, "safety net") {
		t.Fatalf("after a suspend: %q (%s)", got, ops[0].Reason)
	}
	for i := 0; i < 10; i++ {
		clock.advance(time.Minute)
		if got := jobsOf(stepStarts(t, d)); got != "" {
			t.Fatalf("%d minutes after the suspend: %q", i+1, got)
		}
	}

	// A change, then the clock set back an hour: the backup follows the
	// settle time, not the wall clock's hour.
	os.WriteFile(filepath.Join(srcs["a"], "new"), []byte("new"), 0o644)
	waitReal(t, 10*time.Second, "the daemon sees the change", func() bool {
		d.step()
		st, _ := d.sched.State("a")
		return !st.DirtySince.IsZero()
	})
	clock.advance(-time.Hour)
	if got := jobsOf(stepStarts(t, d)); got != "" {
		t.Fatalf("before settling: %q", got)
	}
	clock.advance(2 * time.Second)
	ops = stepStarts(t, d)
	if got := jobsOf(ops); got != "a backup" || !strings.Contains(ops[0].Reason, "files changed") {
		t.Fatalf("after the clock went back: %q", got)
	}
	js, err := d.Job("a")
	if err != nil {
		t.Fatal(err)
	}
	if js.LastBackup.Mode != "journal" || js.RecoveryPoint != 0 {
		t.Errorf("job a: %s scan (%s), recovery point %v", js.LastBackup.Mode, js.LastBackup.ScanReason, js.RecoveryPoint)
	}
	for i := 0; i < 10; i++ {
		clock.advance(time.Minute)
		if got := jobsOf(stepStarts(t, d)); got != "" {
			t.Fatalf("%d minutes after the clock went back: %q", i+1, got)
		}
	}
}

// TestDaemonRestartKeepsRecoveryPoint: a daemon that stops with a change
// unprotected (here: paused) leaves the next one the change's age, and the
// next one counts changes it could not see from when the last was alive.
func TestDaemonRestartKeepsRecoveryPoint(t *testing.T) {
	clock := &lockedClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d, srcs := testDaemon(t, clock, "a")
	if _, err := Open(context.Background(), Options{Config: d.Config(), Clock: clock}); err == nil || !strings.Contains(err.Error(), "uses the state directory") {
		t.Fatalf("a second daemon on the same state directory: %v", err)
	}
	clock.advance(2 * time.Second)
	if got := jobsOf(stepStarts(t, d)); got != "a backup" {
		t.Fatalf("startup: %q", got)
	}
	if err := d.Pause("a", true); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(srcs["a"], "new"), []byte("new"), 0o644)
	changedAt := clock.Now()
	waitReal(t, 10*time.Second, "the daemon sees the change", func() bool {
		d.step()
		st, _ := d.sched.State("a")
		return !st.DirtySince.IsZero()
	})
	clock.advance(time.Hour)
	if err := d.shutdown(); err != nil {
		t.Fatal(err)
	}
	cfg := d.Config()
	d.Close()

	clock.advance(time.Hour)
	d2, err := Open(context.Background(), Options{Config: cfg, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	js, err := d2.Job("a")
	if err != nil {
		t.Fatal(err)
	}
	if !js.Paused || js.UnprotectedSince == nil || !js.UnprotectedSince.Equal(changedAt) {
		t.Errorf("after a restart: paused %v, unprotected since %v, want %v", js.Paused, js.UnprotectedSince, changedAt)
	}
	if js.RecoveryPoint != (2 * time.Hour).Seconds() {
		t.Errorf("recovery point %vs, want two hours", js.RecoveryPoint)
	}
}
