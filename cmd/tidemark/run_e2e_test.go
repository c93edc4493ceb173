//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/api"
	"github.com/tidemark/tidemark/internal/backend/s3/s3test"
	"github.com/tidemark/tidemark/internal/daemon"
	"github.com/tidemark/tidemark/internal/gentree"
)

// runDaemon is a `tidemark run` started by a test.
type runDaemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    syncBuffer
	config string
	state  string
	exited chan struct{}
	err    error
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runConfig is a configuration for the tests: the server on addr, state
// and cache in the env's directory, then the jobs given.
func (e *env) runConfig(addr, jobs string) string {
	return fmt.Sprintf(`[server]
listen = %q
state_dir = %q
cache_dir = %q
stop_timeout = "3s"
`, addr, filepath.Join(e.dir, "state"), e.cache) + jobs
}

// job is a [jobs.NAME] table with quick triggers: settled after 1 s, at
// most every 2 s, at the latest 10 s after a change.
func (e *env) job(name, repo, password string, paths ...string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf(`
[jobs.%s]
repository = %q
password_file = %q
paths = [%s]
[jobs.%s.trigger]
settle = "1s"
min_interval = "2s"
max_delay = "10s"
retry = "1s"
retry_max = "2s"
`, name, repo, password, strings.Join(q, ", "), name)
}

// startRun writes the configuration and starts `tidemark run` on it,
// waiting until its API answers.
func (e *env) startRun(t *testing.T, cfg string) *runDaemon {
	t.Helper()
	path := filepath.Join(e.dir, "tidemark.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return e.restartRun(t, path)
}

func (e *env) restartRun(t *testing.T, path string) *runDaemon {
	t.Helper()
	d := &runDaemon{t: t, config: path, state: filepath.Join(e.dir, "state"), exited: make(chan struct{})}
	d.cmd = exec.Command(binary, "run", "--config", path)
	d.cmd.Env = withoutTidemarkEnv(os.Environ())
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() { d.stop(syscall.SIGKILL) })
	d.waitUntil(15*time.Second, "the API answers", func() bool {
		var s api.StatusResponse
		return d.get("/api/v1/status", &s) == http.StatusOK
	})
	return d
}

func (d *runDaemon) stop(sig syscall.Signal) {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(sig)
	<-d.exited
}

func (d *runDaemon) token() string {
	tok, err := api.ReadToken(filepath.Join(d.state, "api-token"))
	if err != nil {
		return ""
	}
	return tok
}

func (d *runDaemon) apiURL(path string) string {
	b, err := os.ReadFile(d.config)
	if err != nil {
		d.t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "listen = "); ok {
			return "http://" + strings.Trim(v, `"`) + path
		}
	}
	d.t.Fatal("no listen address in the configuration")
	return ""
}

// request sends an API request with the token (or without, when token is
// false) and decodes a JSON answer into v; it returns the status code (0
// when the request failed).
func (d *runDaemon) request(method, path string, token bool, v any) int {
	req, err := http.NewRequest(method, d.apiURL(path), nil)
	if err != nil {
		d.t.Fatal(err)
	}
	if token {
		req.Header.Set("Authorization", "Bearer "+d.token())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(body, v); err != nil {
			d.t.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
	return resp.StatusCode
}

func (d *runDaemon) get(path string, v any) int { return d.request(http.MethodGet, path, true, v) }

func (d *runDaemon) jobStatus(name string) daemon.JobStatus {
	var s daemon.JobStatus
	if code := d.get("/api/v1/jobs/"+name, &s); code != http.StatusOK {
		d.t.Fatalf("job %s: HTTP %d\n%s", name, code, d.out.String())
	}
	return s
}

func (d *runDaemon) waitUntil(limit time.Duration, what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case <-d.exited:
			d.t.Fatalf("tidemark run exited (%v) while waiting until %s:\n%s", d.err, what, d.out.String())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("not within %v: %s\n%s", limit, what, d.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// backedUpAfter waits until the job has a snapshot started after t (its
// fence follows every change made before t) and returns it.
func (d *runDaemon) backedUpAfter(job string, t time.Time, limit time.Duration) *daemon.BackupFacts {
	d.t.Helper()
	var b *daemon.BackupFacts
	d.waitUntil(limit, "job "+job+" has a snapshot taken after "+t.Format("15:04:05.000"), func() bool {
		b = d.jobStatus(job).LastBackup
		return b != nil && b.Started.After(t)
	})
	return b
}

// inSnapshot reports whether the snapshot holds path.
func (e *env) inSnapshot(snapshot, path string) bool {
	r := e.run("ls", snapshot, path)
	return r.code == 0 && strings.Contains(r.stdout, path)
}

// TestRunBacksUpChanges drives `tidemark run` end to end: every change is
// in a snapshot within the configured bound, the API answers only with
// the token, pause, resume and backup-now work, SIGHUP applies a good
// configuration and refuses a bad one, and SIGTERM stops it promptly.
func TestRunBacksUpChanges(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "first.txt"), []byte("first"), 0o644)
	e.mustRun("init")
	addr := freeAddr(t)
	cfg := e.runConfig(addr, e.job("home", e.repo, e.password, src)+"[jobs.home.verify]\nbudget = \"10MiB/day\"\n")
	started := time.Now()
	d := e.startRun(t, cfg)

	// The startup backup scans fully.
	b := d.backedUpAfter("home", started.Add(-time.Second), 20*time.Second)
	if b.Mode != "full" || !strings.Contains(b.Reason, "tidemark run started") {
		t.Fatalf("startup backup: %+v", b)
	}
	// Each change is in a snapshot within max_delay (10 s), plus slack
	// for a slow machine; after the first, the journal drives them.
	const bound = 20 * time.Second
	for i, name := range []string{"a.txt", "sub/b.txt", "sub/c/d.txt"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		changed := time.Now()
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		b := d.backedUpAfter("home", changed, bound)
		if !e.inSnapshot(b.Snapshot, p) {
			t.Fatalf("change %d (%s) is not in snapshot %s", i, name, b.Snapshot)
		}
		if b.Mode != "journal" {
			t.Errorf("change %d: %s scan (%s), want journal", i, b.Mode, b.ScanReason)
		}
		t.Logf("change %d in snapshot %.8s %v after it was made", i, b.Snapshot, b.Finished.Sub(changed).Round(time.Millisecond))
	}
	d.waitUntil(5*time.Second, "the recovery point is back to 0", func() bool { return d.jobStatus("home").RecoveryPoint == 0 })
	// Verify ran after the backups, within its budget.
	if v := d.jobStatus("home").Verify; v == nil || v.WindowBytes == 0 || v.WindowBytes > 10<<20 || v.Budget != "10MiB/day" {
		t.Errorf("verify: %+v", v)
	}

	// The API: nothing without the token, data with it.
	for _, path := range []string{"/api/v1/jobs", "/api/v1/status", "/metrics", "/api/v1/events", "/nope"} {
		if code := d.request(http.MethodGet, path, false, nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without token: HTTP %d", path, code)
		}
	}
	if code := d.request(http.MethodPost, "/api/v1/jobs/home/backup", false, nil); code != http.StatusUnauthorized {
		t.Errorf("POST backup without token: HTTP %d", code)
	}
	var jobs []daemon.JobStatus
	if code := d.get("/api/v1/jobs", &jobs); code != http.StatusOK || len(jobs) != 1 || jobs[0].Name != "home" || jobs[0].LastBackup == nil {
		t.Fatalf("jobs: HTTP %d %+v", code, jobs)
	}
	var sns []struct{ ID string }
	if code := d.get("/api/v1/jobs/home/snapshots", &sns); code != http.StatusOK || len(sns) < 4 {
		t.Fatalf("snapshots: HTTP %d, %d snapshots", code, len(sns))
	}
	if code := d.get("/api/v1/jobs/nope", nil); code != http.StatusNotFound {
		t.Errorf("unknown job: HTTP %d", code)
	}
	var ops []daemon.Operation
	if code := d.get("/api/v1/operations?job=home&limit=50", &ops); code != http.StatusOK || len(ops) < 4 || ops[0].Outcome != daemon.OutcomeOK {
		t.Fatalf("operations: HTTP %d %+v", code, ops)
	}
	metrics := httpText(t, d, "/metrics")
	for _, want := range []string{`tidemark_job_recovery_point_seconds{job="home"} 0`, `tidemark_job_backups_by_scan_mode_total{job="home",mode="journal"}`, "tidemark_watcher_up 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}

	// The event stream starts with the jobs' states, then tells what
	// happens: pause, a change left unprotected, resume and its backup.
	events := streamEvents(t, d)
	if ev := events.next(t, func(ev daemon.Event) bool { return ev.Type == daemon.EventState }); ev.Status == nil || ev.Status.Name != "home" {
		t.Fatalf("first event: %+v", ev)
	}
	if code := d.request(http.MethodPost, "/api/v1/jobs/home/pause", true, nil); code != http.StatusOK {
		t.Fatalf("pause: HTTP %d", code)
	}
	before := d.jobStatus("home").LastBackup.Snapshot
	changed := time.Now()
	os.WriteFile(filepath.Join(src, "while-paused.txt"), []byte("x"), 0o644)
	d.waitUntil(10*time.Second, "a paused job's change shows in its recovery point", func() bool { return d.jobStatus("home").RecoveryPoint >= 3 })
	if s := d.jobStatus("home"); s.LastBackup.Snapshot != before || s.State != "paused" {
		t.Fatalf("paused job backed up: %+v", s)
	}
	if code := d.request(http.MethodPost, "/api/v1/jobs/home/resume", true, nil); code != http.StatusOK {
		t.Fatalf("resume: HTTP %d", code)
	}
	b = d.backedUpAfter("home", changed, bound)
	if !e.inSnapshot(b.Snapshot, filepath.Join(src, "while-paused.txt")) {
		t.Fatal("the change made while paused is not in the snapshot after resume")
	}
	events.next(t, func(ev daemon.Event) bool {
		return ev.Type == daemon.EventOperation && ev.Operation.Outcome == daemon.OutcomeOK && ev.Operation.Finished != nil
	})
	// Backup now, without any change.
	requested := time.Now()
	if code := d.request(http.MethodPost, "/api/v1/jobs/home/backup", true, nil); code != http.StatusAccepted {
		t.Fatalf("backup now: HTTP %d", code)
	}
	if b := d.backedUpAfter("home", requested, bound); b.Reason != "requested" {
		t.Errorf("backup now ran for %q", b.Reason)
	}

	// tidemark status, from the running daemon.
	r := e.mustRun("status", "--config", d.config, "--json")
	var st statusOutput
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || !st.Running || len(st.Jobs) != 1 || st.Jobs[0].FullScanNote == "" {
		t.Fatalf("status: %v %s", err, r.stdout)
	}
	if r := e.mustRun("status", "--config", d.config); !strings.Contains(r.stdout, "home: idle, recovery point 0s") {
		t.Errorf("status:\n%s", r.stdout)
	}

	// SIGHUP with a bad file: refused, the old configuration runs on.
	os.WriteFile(d.config, []byte(cfg+"\n[jobs.home.alert]\nafter = \"soon\"\n"), 0o644)
	if r := e.run("config", "check", d.config); r.code != exitFailure || !strings.Contains(r.stderr, "jobs.home.alert.after") {
		t.Fatalf("config check of a bad file: exit %d: %s", r.code, r.stderr)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitUntil(5*time.Second, "the bad configuration is refused", func() bool { return strings.Contains(d.out.String(), "reload refused") })
	changed = time.Now()
	os.WriteFile(filepath.Join(src, "after-bad-reload.txt"), []byte("x"), 0o644)
	d.backedUpAfter("home", changed, bound)
	// SIGHUP with a good one: applied, and config check showed it first.
	good := strings.Replace(cfg, `settle = "1s"`, `settle = "2s"`, 1)
	os.WriteFile(d.config, []byte(good), 0o644)
	if r := e.mustRun("config", "check", d.config); !strings.Contains(r.stdout, "job home: trigger.settle: 1s -> 2s") {
		t.Fatalf("config check of a good file:\n%s", r.stdout)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitUntil(5*time.Second, "the good configuration is applied", func() bool {
		return strings.Contains(d.out.String(), "job home: trigger.settle: 1s -> 2s")
	})
	if r := e.mustRun("config", "check", d.config); !strings.Contains(r.stdout, "has this configuration already") {
		t.Errorf("config check after the reload:\n%s", r.stdout)
	}

	// SIGTERM: a clean stop within a bound, exit 0.
	stopped := time.Now()
	d.stop(syscall.SIGTERM)
	if took := time.Since(stopped); took > 10*time.Second {
		t.Errorf("SIGTERM took %v", took)
	}
	if d.err != nil {
		t.Errorf("tidemark run exited with %v:\n%s", d.err, d.out.String())
	}
	r = e.mustRun("status", "--config", d.config, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Running || st.Jobs[0].LastBackup == nil {
		t.Fatalf("status of a stopped daemon: %v %s", err, r.stdout)
	}
	e.mustRun("check")
}

func httpText(t *testing.T, d *runDaemon, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.apiURL(path), nil)
	req.Header.Set("Authorization", "Bearer "+d.token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// eventStream reads a daemon's server-sent events.
type eventStream struct {
	ch chan daemon.Event
}

func streamEvents(t *testing.T, d *runDaemon) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.apiURL("/api/v1/events"), nil)
	req.Header.Set("Authorization", "Bearer "+d.token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("events: HTTP %d %s", resp.StatusCode, ct)
	}
	s := &eventStream{ch: make(chan daemon.Event, 1024)}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev daemon.Event
			if json.Unmarshal([]byte(data), &ev) == nil {
				s.ch <- ev
			}
		}
	}()
	return s
}

func (s *eventStream) next(t *testing.T, match func(daemon.Event) bool) daemon.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-s.ch:
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatal("no matching event within 20s")
		}
	}
}

// alertSink is an HTTP endpoint receiving alerts.
type alertSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	alerts []daemon.Alert
}

func newAlertSink(t *testing.T) *alertSink {
	s := &alertSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a daemon.Alert
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&a) != nil {
			http.Error(w, "bad alert", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.alerts = append(s.alerts, a)
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *alertSink) has(job, event string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.alerts {
		if a.Job == job && a.Event == event {
			return true
		}
	}
	return false
}

// TestRunJobsIndependent runs three jobs: two on one filesystem into one
// repository, and one whose password is wrong. The wrong one fails
// clearly and alerts; the others back up their own changes all along. A
// paused job's unprotected change alerts past alert.after, and the
// backup after resume resolves it.
func TestRunJobsIndependent(t *testing.T) {
	e := newEnv(t)
	a, b := filepath.Join(e.dir, "a"), filepath.Join(e.dir, "b")
	for _, dir := range []string{a, b} {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "file"), []byte(dir), 0o644)
	}
	e.mustRun("init")
	other := filepath.Join(e.dir, "other-repo")
	e.mustRun("-r", other, "init")
	wrong := filepath.Join(e.dir, "wrong-pw")
	os.WriteFile(wrong, []byte("not the password\n"), 0o600)
	sink := newAlertSink(t)
	alerts := filepath.Join(e.dir, "alerts.log")
	alert := func(name string) string {
		return fmt.Sprintf("[jobs.%s.alert]\nafter = \"3s\"\nurl = %q\ncommand = \"echo $TIDEMARK_JOB $TIDEMARK_EVENT >> %s\"\n", name, sink.srv.URL, alerts)
	}
	hooks := filepath.Join(e.dir, "hooks.log")
	hook := func(name string) string {
		return fmt.Sprintf("[jobs.%s.hooks]\nbefore = \"echo before $TIDEMARK_JOB >> %[2]s\"\nafter = \"echo after $TIDEMARK_JOB $TIDEMARK_SCAN_MODE $TIDEMARK_SNAPSHOT >> %[2]s\"\nfailure = \"echo failure $TIDEMARK_JOB $TIDEMARK_ERROR >> %[2]s\"\n", name, hooks)
	}
	// b has its own repository, where its forget prunes: a prune makes the
	// next backup of every set in a repository check what it reuses.
	bRepo := filepath.Join(e.dir, "b-repo")
	e.mustRun("-r", bRepo, "init")
	retention := "[jobs.b.retention]\nkeep_last = 1\nevery = \"4s\"\n"
	cfg := e.runConfig(freeAddr(t), e.job("a", e.repo, e.password, a)+alert("a")+hook("a")+e.job("b", bRepo, e.password, b)+retention+
		e.job("bad", other, wrong, b)+alert("bad")+hook("bad"))
	started := time.Now()
	d := e.startRun(t, cfg)
	d.backedUpAfter("a", started.Add(-time.Second), 20*time.Second)
	d.backedUpAfter("b", started.Add(-time.Second), 20*time.Second)
	d.waitUntil(20*time.Second, "the wrong password fails the job, and alerts", func() bool {
		s := d.jobStatus("bad")
		return s.Failures > 0 && strings.Contains(s.LastError, "wrong password") && sink.has("bad", daemon.AlertBackupFailed)
	})
	if s := d.jobStatus("bad"); !strings.Contains(s.LastError, wrong) || s.State != "failing" || s.LastBackup != nil {
		t.Errorf("bad job: %+v", s)
	}
	var ops []daemon.Operation
	d.get("/api/v1/operations?job=bad", &ops)
	if len(ops) == 0 || ops[0].Outcome != daemon.OutcomeFailed {
		t.Errorf("bad job's operations: %+v", ops)
	}
	// The good jobs go on, each with its own changes.
	for _, dir := range []string{a, b} {
		job := filepath.Base(dir)
		changed := time.Now()
		p := filepath.Join(dir, "new-"+job)
		os.WriteFile(p, []byte(job), 0o644)
		bk := d.backedUpAfter(job, changed, 20*time.Second)
		repo := e.repo
		if job == "b" {
			repo = bRepo
		}
		if !strings.Contains(e.mustRun("-r", repo, "ls", bk.Snapshot, p).stdout, p) {
			t.Errorf("job %s: %s not in %+v", job, p, bk)
		}
		// After b's prune, b's next backup checks what it reuses.
		if bk.Mode != "journal" && !(job == "b" && strings.Contains(bk.ScanReason, "index entries were removed")) {
			t.Errorf("job %s: %s scan (%s)", job, bk.Mode, bk.ScanReason)
		}
	}
	if sink.has("a", daemon.AlertBackupFailed) || sink.has("a", daemon.AlertRecoveryPoint) {
		t.Error("the good job alerted")
	}
	// A paused job's change stays unprotected: past alert.after, an alert.
	d.request(http.MethodPost, "/api/v1/jobs/a/pause", true, nil)
	os.WriteFile(filepath.Join(a, "unprotected"), []byte("x"), 0o644)
	d.waitUntil(15*time.Second, "the recovery point alert", func() bool { return sink.has("a", daemon.AlertRecoveryPoint) })
	if !d.jobStatus("a").Alerting {
		t.Error("status does not say the job is alerting")
	}
	d.request(http.MethodPost, "/api/v1/jobs/a/resume", true, nil)
	d.waitUntil(20*time.Second, "the resolved alert", func() bool { return sink.has("a", daemon.AlertResolved) })

	// Forget on job b's schedule: its own snapshots, the last one kept.
	d.waitUntil(20*time.Second, "job b's forget", func() bool { return d.jobStatus("b").LastForget != nil })
	var sns []struct{ ID string }
	if code := d.get("/api/v1/jobs/b/snapshots", &sns); code != http.StatusOK || len(sns) != 1 {
		t.Errorf("job b's snapshots after forget: HTTP %d, %d snapshots", code, len(sns))
	}
	if code := d.get("/api/v1/jobs/a/snapshots", &sns); code != http.StatusOK || len(sns) < 2 {
		t.Errorf("job a's snapshots after b's forget: HTTP %d, %d snapshots", code, len(sns))
	}
	d.stop(syscall.SIGTERM)
	e.mustRun("check")

	// Hooks ran with the jobs' facts; the alert command too.
	log, _ := os.ReadFile(hooks)
	for _, want := range []string{"before a\n", "after a full ", "after a journal ", "failure bad wrong password"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("hooks log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(string(log), "after bad") {
		t.Errorf("the after hook ran for a failed backup:\n%s", log)
	}
	log, _ = os.ReadFile(alerts)
	for _, want := range []string{"bad backup_failed\n", "a recovery_point\n", "a resolved\n"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("alert command log lacks %q:\n%s", want, log)
		}
	}
}

// TestRunKilledMidBackup stops `tidemark run` while a backup runs, first
// with SIGTERM (it abandons the backup after stop_timeout and exits 0),
// then with SIGKILL: the restarted daemon logs the operation as abandoned,
// backs up afresh (a full scan: the watcher's journal restarted), and the
// repository checks clean.
func TestRunKilledMidBackup(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 200, Seed: 5, LargeEvery: 20, LargeSize: 2 << 20}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("init")
	// Uploads limited to 2 MiB/s: the first backup takes several seconds.
	job := strings.Replace(e.job("slow", e.repo, e.password, src), "paths = ", "limit_upload = 2048\npaths = ", 1)
	cfg := e.runConfig(freeAddr(t), job)
	d := e.startRun(t, cfg)
	d.waitUntil(20*time.Second, "the backup runs", func() bool { return d.jobStatus("slow").Running == daemon.OpBackup })
	stopped := time.Now()
	d.stop(syscall.SIGTERM)
	// stop_timeout is 3 s; abandoning the backup takes a moment more.
	if took := time.Since(stopped); took > 15*time.Second || d.err != nil {
		t.Fatalf("SIGTERM during a backup: exit %v after %v\n%s", d.err, took, d.out.String())
	}
	if !strings.Contains(d.out.String(), "abandoning the running operations") {
		t.Errorf("the log does not say the backup was abandoned:\n%s", d.out.String())
	}

	d = e.restartRun(t, d.config)
	d.waitUntil(20*time.Second, "the backup runs", func() bool { return d.jobStatus("slow").Running == daemon.OpBackup })
	time.Sleep(500 * time.Millisecond)
	d.stop(syscall.SIGKILL)

	// Restart without the limit.
	os.WriteFile(d.config, []byte(strings.Replace(cfg, "limit_upload = 2048\n", "", 1)), 0o644)
	restarted := time.Now()
	d = e.restartRun(t, d.config)
	b := d.backedUpAfter("slow", restarted.Add(-time.Second), 60*time.Second)
	if b.Mode != "full" {
		t.Errorf("first backup after the kill: %s (%s)", b.Mode, b.ScanReason)
	}
	var ops []daemon.Operation
	d.get("/api/v1/operations?job=slow", &ops)
	killed, stopping := false, false
	for _, op := range ops {
		killed = killed || (op.Outcome == daemon.OutcomeAbandoned && strings.Contains(op.Message, "stopped while it ran"))
		stopping = stopping || (op.Outcome == daemon.OutcomeAbandoned && strings.Contains(op.Message, "tidemark run is stopping"))
	}
	if !killed || !stopping {
		t.Errorf("the killed and the stopped backups are not logged as abandoned: %+v", ops)
	}
	// The next change is backed up by the journal again.
	changed := time.Now()
	os.WriteFile(filepath.Join(src, "after-kill"), []byte("x"), 0o644)
	if b := d.backedUpAfter("slow", changed, 20*time.Second); b.Mode != "journal" {
		t.Errorf("after the kill: %s scan (%s)", b.Mode, b.ScanReason)
	}
	d.stop(syscall.SIGTERM)
	e.mustRun("check")
	target := filepath.Join(e.dir, "restore")
	e.mustRun("restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src))
}

// tcpProxy forwards connections to a server; down makes the server
// unreachable (connections refused, open ones cut), up reachable again on
// the same address.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, addr: freeAddr(t), target: target, conns: map[net.Conn]bool{}}
	p.up()
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *tcpProxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); done <- struct{}{} }()
	go func() { io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// TestRunS3Outage: the S3 server becomes unreachable for a while. The
// backups of changes made meanwhile fail and are retried with backoff;
// when the server is back, one backup catches up with every change, and
// the daemon says so.
func TestRunS3Outage(t *testing.T) {
	e := newEnv(t)
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	proxy := newTCPProxy(t, srv.Endpoint)
	e.repo = "s3:http://" + proxy.addr + "/tidemark/repo"
	src := filepath.Join(e.dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "first"), []byte("first"), 0o644)
	e.mustRun("init")
	started := time.Now()
	d := e.startRun(t, e.runConfig(freeAddr(t), e.job("cloud", e.repo, e.password, src)))
	d.backedUpAfter("cloud", started.Add(-time.Second), 30*time.Second)

	proxy.down()
	outage := time.Now()
	os.WriteFile(filepath.Join(src, "during-outage-1"), []byte("1"), 0o644)
	d.waitUntil(90*time.Second, "a backup fails during the outage", func() bool { return d.jobStatus("cloud").Failures > 0 })
	s := d.jobStatus("cloud")
	if s.State != "failing" || s.RecoveryPoint <= 0 || s.LastError == "" {
		t.Fatalf("during the outage: %+v", s)
	}
	t.Logf("during the outage: %s", s.LastError)
	os.WriteFile(filepath.Join(src, "during-outage-2"), []byte("2"), 0o644)
	time.Sleep(time.Second)
	proxy.up()
	b := d.backedUpAfter("cloud", outage, 90*time.Second)
	for _, name := range []string{"during-outage-1", "during-outage-2"} {
		if !e.inSnapshot(b.Snapshot, filepath.Join(src, name)) {
			t.Errorf("%s is not in the snapshot after the outage", name)
		}
	}
	if b.Mode != "journal" {
		t.Errorf("after the outage: %s scan (%s): the journal should still cover it", b.Mode, b.ScanReason)
	}
	d.waitUntil(5*time.Second, "the log says it caught up", func() bool { return strings.Contains(d.out.String(), "caught up") })
	if s := d.jobStatus("cloud"); s.Failures != 0 || s.State == "failing" {
		t.Errorf("after the outage: %+v", s)
	}
	t.Logf("outage: first failure and recovery took %v in all", time.Since(outage).Round(time.Second))
	d.stop(syscall.SIGTERM)
}
