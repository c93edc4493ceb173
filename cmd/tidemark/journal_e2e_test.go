//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// watcher runs `tidemark watch` with its state in state.
type watcher struct {
	cmd *exec.Cmd
	out syncBuffer
}

// syncBuffer is a bytes.Buffer the watcher's output goroutine and the test
// may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startWatch runs `tidemark watch --state STATE ARGS...` (the paths, and
// options such as --inotify) and waits until it records changes.
func startWatch(t *testing.T, state string, args ...string) *watcher {
	t.Helper()
	w := &watcher{cmd: exec.Command(binary, append([]string{"watch", "--state", state}, args...)...)}
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.stop(syscall.SIGTERM) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command(binary, "journal", "status", "--state", state, "--json").Output()
		var st struct{ Alive, Fresh bool }
		if json.Unmarshal(out, &st) == nil && st.Alive && st.Fresh {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("watcher did not start: %s", w.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *watcher) stop(sig syscall.Signal) {
	if w.cmd.ProcessState == nil {
		_ = w.cmd.Process.Signal(sig)
		_ = w.cmd.Wait()
	}
}

type backupJSON struct {
	Scan struct {
		Mode, Reason string
	}
	Totals struct{ Bytes, Files uint64 }
}

func (e *env) backupJSON(args ...string) backupJSON {
	e.t.Helper()
	r := e.mustRun(append([]string{"backup", "--json"}, args...)...)
	var b backupJSON
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil {
		e.t.Fatalf("%v: %s", err, r.stdout)
	}
	return b
}

// TestJournalBackupsCLI drives the watcher and journal-driven backups
// through the binary: journal mode when the record is complete, full scans
// with the right reason otherwise.
func TestJournalBackupsCLI(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	state := filepath.Join(e.dir, "state")
	richTree(t, src)
	time.Sleep(1100 * time.Millisecond) // let ctimes age past the racy window
	w := startWatch(t, state, src)
	e.mustRun("init")
	b := e.backupJSON("--state", state, src)
	if b.Scan.Mode != "full" || !strings.Contains(b.Scan.Reason, "no parent") {
		t.Fatalf("first backup: %+v", b.Scan)
	}
	total := b.Totals

	os.WriteFile(filepath.Join(src, "dir", "new.txt"), []byte("new file"), 0o644)
	b = e.backupJSON("--state", state, "--scan", "journal", src)
	if b.Scan.Mode != "journal" {
		t.Fatalf("journal backup: %+v", b.Scan)
	}
	if b.Totals.Files != total.Files+1 || b.Totals.Bytes != total.Bytes+8 {
		t.Fatalf("journal backup totals %+v, want %d files / %d bytes", b.Totals, total.Files+1, total.Bytes+8)
	}
	status := e.mustRun("journal", "status", "--state", state, "--json")
	if !strings.Contains(status.stdout, `"alive": true`) {
		t.Fatalf("journal status: %s", status.stdout)
	}

	// Changed settings force a full scan.
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", src)
	if !strings.Contains(b.Scan.Reason, "settings changed") {
		t.Fatalf("after changing excludes: %+v", b.Scan)
	}
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", src)
	if b.Scan.Mode != "journal" {
		t.Fatalf("same settings again: %+v", b.Scan)
	}
	// Policy: every journal backup is followed by a full one.
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", "--full-scan-every", "1", src)
	if !strings.Contains(b.Scan.Reason, "--full-scan-every") {
		t.Fatalf("policy: %+v", b.Scan)
	}
	// A forced full scan still takes a cursor for the next backup.
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", "--scan", "full", src)
	if b.Scan.Mode != "parent-assisted" || !strings.Contains(b.Scan.Reason, "--scan full") {
		t.Fatalf("--scan full: %+v", b.Scan)
	}
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", "--scan", "journal", src)
	if b.Scan.Mode != "journal" {
		t.Fatalf("after a forced full scan: %+v", b.Scan)
	}

	// A killed watcher: journal mode refuses, auto falls back and says why.
	w.stop(syscall.SIGKILL)
	r := e.run("backup", "--state", state, "--exclude", "*.tmp", "--scan", "journal", src)
	if r.code != exitFailure || !strings.Contains(r.stderr, "watcher not running") {
		t.Fatalf("journal backup without watcher: exit %d: %s", r.code, r.stderr)
	}
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", src)
	if b.Scan.Mode != "parent-assisted" || !strings.Contains(b.Scan.Reason, "watcher not running") {
		t.Fatalf("without watcher: %+v", b.Scan)
	}
	// A new watcher is a new epoch: the parent has no cursor (the last
	// backup took none), then the one after has.
	startWatch(t, state, src)
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", src)
	if b.Scan.Mode == "journal" {
		t.Fatalf("journal used across a watcher restart: %+v", b.Scan)
	}
	os.Remove(filepath.Join(src, "dir", "new.txt"))
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", src)
	if b.Scan.Mode != "journal" || b.Totals != total {
		t.Fatalf("after restart: %+v totals %+v want %+v", b.Scan, b.Totals, total)
	}

	// --changed-from merges an external list into the parent.
	os.WriteFile(filepath.Join(src, "empty"), []byte("now with data"), 0o644)
	list := filepath.Join(e.dir, "changed.txt")
	os.WriteFile(list, []byte(filepath.Join(src, "empty")+"\n"), 0o644)
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", "--changed-from", list, src)
	if b.Scan.Mode != "external list" || b.Totals.Bytes != total.Bytes+13 {
		t.Fatalf("--changed-from: %+v %+v", b.Scan, b.Totals)
	}
	target := filepath.Join(e.dir, "restore")
	e.mustRun("restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src))

	// A deleted journal file: the record is no longer provable, so the
	// next backup scans fully and says why.
	e.backupJSON("--state", state, "--exclude", "*.tmp", src) // takes a cursor again
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", src)
	if b.Scan.Mode != "journal" {
		t.Fatalf("before deleting the journal: %+v", b.Scan)
	}
	before := b.Totals
	segments, _ := filepath.Glob(filepath.Join(state, "journal", "*", "*"))
	removed := 0
	for _, seg := range segments {
		if filepath.Base(seg) != "epoch.json" {
			os.Remove(seg)
			removed++
		}
	}
	if removed == 0 {
		t.Fatalf("no journal segments found among %v", segments)
	}
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", src)
	if b.Scan.Mode != "parent-assisted" || !strings.Contains(b.Scan.Reason, "no uninterrupted change record") {
		t.Fatalf("after deleting the journal: %+v", b.Scan)
	}
	if b.Totals != before {
		t.Fatalf("totals %+v, want %+v", b.Totals, before)
	}
	// The watcher noticed, recorded a gap and carried on in a new segment:
	// the backup above took a cursor after that gap, so the next one uses
	// the journal again.
	b = e.backupJSON("--state", state, "--exclude", "*.tmp", src)
	if b.Scan.Mode != "journal" || b.Totals != before {
		t.Fatalf("after the watcher recovered: %+v %+v", b.Scan, b.Totals)
	}
}
