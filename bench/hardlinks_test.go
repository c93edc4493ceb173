//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/gentree"
)

// TestHardLinkBench runs the hard-link row on a small tree with a real
// watcher and the real binary: both its backups are journal-driven, and
// the timed one lists the directory of the files' other names.
func TestHardLinkBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a watcher")
	}
	work := t.TempDir()
	bin := filepath.Join(work, "tidemark")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/tidemark").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	src := filepath.Join(work, "src")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 2000, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "TIDEMARK_REPOSITORY="+filepath.Join(work, "repo"), "TIDEMARK_PASSWORD=pw",
		"XDG_CACHE_HOME="+filepath.Join(work, "cache"))
	state := filepath.Join(work, "state")
	run := func(args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := run("init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	w := exec.Command(bin, "watch", "--state", state, src)
	w.Env = env
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		w.Process.Signal(syscall.SIGTERM)
		w.Wait()
	}()
	var reasons []string
	backup := func(extra ...string) (measure, error) {
		start := time.Now()
		out, err := run(append(append([]string{"backup", "--state", state}, extra...), src)...)
		if err != nil {
			return measure{}, err
		}
		if i := strings.Index(out, "scan: "); i >= 0 {
			reasons = append(reasons, strings.SplitN(out[i:], "\n", 2)[0])
		}
		return measure{wall: time.Since(start), heap: -1}, nil
	}
	// The first backup records a cursor once the watcher is up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := run("journal", "status", "--state", state)
		if err == nil && strings.Contains(out, "watcher: running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watcher did not start: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := backup(); err != nil {
		t.Fatal(err)
	}
	var rows []string
	err := hardLinkBench(context.Background(), src, 20, backup, func(label string, m measure) { rows = append(rows, label) })
	if err != nil {
		t.Fatalf("%v\nscans: %q", err, reasons)
	}
	// --scan journal fails rather than scan fully; the last scan also
	// lists the links' directory.
	last := reasons[len(reasons)-1]
	if len(rows) != 1 || !strings.Contains(last, "scan: journal") || !strings.Contains(last, "(1 of them for other names of hard-linked files)") {
		t.Fatalf("rows %q, scans %q", rows, reasons)
	}
}
