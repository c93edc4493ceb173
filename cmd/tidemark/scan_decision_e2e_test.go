//go:build linux

package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lsPaths lists the paths of the latest snapshot.
func (e *env) lsPaths() map[string]bool {
	e.t.Helper()
	out := e.mustRun("ls", "latest", "--json").stdout
	paths := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var n struct{ Path string }
		if err := json.Unmarshal([]byte(line), &n); err != nil {
			e.t.Fatalf("ls --json line %q: %v", line, err)
		}
		paths[n.Path] = true
	}
	return paths
}

// TestChangedFromFollowsScanRules: an external list of changed paths goes
// through the same decision as the journal. --scan full scans fully, and a
// settings change (a new exclude) scans fully, so files the new exclude
// matches leave the snapshot, now and in later list-driven backups.
func TestChangedFromFollowsScanRules(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	for name, data := range map[string]string{"a.txt": "a", "b.tmp": "temporary", "dir/c.txt": "c", "dir/d.tmp": "more temporary"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.mustRun("init")
	e.backupJSON(src)
	list := filepath.Join(e.dir, "changed.txt")
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("a, changed"), 0o644)
	os.WriteFile(list, []byte(filepath.Join(src, "a.txt")+"\n"), 0o644)

	b := e.backupJSON("--scan", "full", "--changed-from", list, src)
	if b.Scan.Mode != "parent-assisted" || !strings.Contains(b.Scan.Reason, "--scan full") {
		t.Fatalf("--scan full --changed-from: %+v", b.Scan)
	}
	b = e.backupJSON("--changed-from", list, src)
	if b.Scan.Mode != "external list" {
		t.Fatalf("--changed-from with unchanged settings: %+v", b.Scan)
	}

	b = e.backupJSON("--exclude", "*.tmp", "--changed-from", list, src)
	if b.Scan.Mode != "parent-assisted" || !strings.Contains(b.Scan.Reason, "settings changed") {
		t.Fatalf("--changed-from with a new exclude: %+v", b.Scan)
	}
	for _, excluded := range []string{"b.tmp", "dir/d.tmp"} {
		if e.lsPaths()[filepath.Join(src, excluded)] {
			t.Fatalf("%s is excluded but still in the snapshot", excluded)
		}
	}
	if b.Totals.Files != 2 {
		t.Fatalf("totals %+v, want the 2 files that are not excluded", b.Totals)
	}
	// The next list-driven backup starts from the right snapshot.
	b = e.backupJSON("--exclude", "*.tmp", "--changed-from", list, src)
	if b.Scan.Mode != "external list" || b.Totals.Files != 2 || e.lsPaths()[filepath.Join(src, "b.tmp")] {
		t.Fatalf("after the settings change: %+v %+v", b.Scan, b.Totals)
	}
	// A list with a relative path is refused, naming the file and line.
	os.WriteFile(list, []byte(filepath.Join(src, "a.txt")+"\nrelative/path\n"), 0o644)
	r := e.run("backup", "--changed-from", list, src)
	if r.code != exitFailure || !strings.Contains(r.stderr, list+" line 2") {
		t.Fatalf("relative path in the list: exit %d: %s", r.code, r.stderr)
	}
}

// TestDeclinedScanReportsWhatHappened: a list-driven scan that meets a
// changed hard-linked file lists its other names' directories and scans
// again; a chain of such files, each leading to the next, goes on for more
// rounds than a scan allows, and it gives up and scans fully. The
// snapshot, the summary, --json and the history then describe the full
// scan alone: its mode and reason, and only the bytes it read.
func TestDeclinedScanReportsWhatHappened(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	const files, size, chain = 40, 1 << 20, 6
	var changed []string
	write := func(p string) {
		buf := make([]byte, size)
		rand.Read(buf)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(src, "a"), 0o755)
	for i := range files {
		p := filepath.Join(src, "a", "f"+string(rune('a'+i/26))+string(rune('a'+i%26)))
		write(p)
		changed = append(changed, p)
	}
	// l0 has names in z0 and z1, l1 in z1 and z2, and so on: each round
	// of the scan meets the next one changed.
	var linked []string
	for i := range chain {
		dir := filepath.Join(src, fmt.Sprintf("z%d", i))
		next := filepath.Join(src, fmt.Sprintf("z%d", i+1))
		os.MkdirAll(dir, 0o755)
		os.MkdirAll(next, 0o755)
		p := filepath.Join(dir, fmt.Sprintf("l%d", i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(p, filepath.Join(next, fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
		linked = append(linked, p)
	}
	e.mustRun("init")
	e.backupJSON(src)

	list := filepath.Join(e.dir, "changed.txt")
	round := func() {
		for _, p := range changed {
			write(p)
		}
		for _, p := range linked {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("appended")
			f.Close()
		}
		os.WriteFile(list, []byte(strings.Join(append(changed, linked[0]), "\n")+"\n"), 0o644)
	}
	// Everything backup k must read: the 40 files and the linked ones,
	// through both of their names, which grow by a line each round.
	want := func(k uint64) uint64 { return files*size + 2*chain*(1+k*uint64(len("appended"))) }
	const reason = "hard-linked files changed whose other names were still not all listed after"

	round()
	r := e.mustRun("backup", "--json", "--changed-from", list, src)
	var b struct {
		Scan    struct{ Mode, Reason string }
		Summary struct {
			BytesRead    uint64 `json:"bytes_read"`
			FilesChanged uint64 `json:"files_changed"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil {
		t.Fatal(err)
	}
	if b.Scan.Mode != "parent-assisted" || !strings.Contains(b.Scan.Reason, reason) {
		t.Fatalf("scan %+v, want a full scan because of the hard links", b.Scan)
	}
	if b.Summary.BytesRead != want(1) || b.Summary.FilesChanged != files+2*chain {
		t.Fatalf("summary %+v, want %d bytes read and %d files changed", b.Summary, want(1), files+2*chain)
	}

	round()
	r = e.mustRun("backup", "--changed-from", list, src)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(r.stdout, "gave up ("+reason) || !strings.Contains(last, "(parent-assisted scan)") {
		t.Fatalf("summary does not say what happened:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "read 40.0 MiB,") {
		t.Fatalf("summary should report the 40.0 MiB the full scan read:\n%s", r.stdout)
	}

	var hist []struct {
		Mode      string
		BytesRead uint64 `json:"bytes_read"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("history", "--json").stdout), &hist); err != nil {
		t.Fatal(err)
	}
	// Newest first.
	for i, h := range hist[:2] {
		if k := uint64(2 - i); h.Mode != "parent-assisted" || h.BytesRead != want(k) {
			t.Fatalf("history %+v, want parent-assisted with %d bytes read in backup %d", hist[:2], want(k), k)
		}
	}
}
