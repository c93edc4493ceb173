//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/gentree"
)

// verifyOut is the part of verify's JSON output the tests read.
type verifyOut struct {
	Stopped       string
	Packs         int
	TotalBytes    int64 `json:"total_bytes"`
	NeverVerified int   `json:"never_verified"`
	Checked       []checkedOut
	Bytes         int64
	WindowBytes   int64 `json:"window_bytes"`
	BytesLeft     int64 `json:"bytes_left"`
	BudgetBytes   int64 `json:"budget_bytes"`
	Problems      []struct{ Kind, Object, Blob string }
	Damaged       []struct{ Object, Problem string }
}

type checkedOut struct {
	Pack  string
	Type  string
	Bytes int64
	OK    bool
}

func parseVerify(t *testing.T, out string) verifyOut {
	t.Helper()
	var v verifyOut
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return v
}

// TestVerifyCLI: backup --verify reads the new packs within the budget;
// verify then has nothing due; a pack damaged before verify read it is
// found and named, by verify and by a later backup --verify (whose
// snapshot is kept), and reported again without being downloaded again.
func TestVerifyCLI(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, size int, seed uint64) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, name), gentree.RandomBytes(size, seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 2<<20, 1)
	write("b", 100, 2)
	e.mustRun("init")

	var backup struct{ Verify verifyOut }
	out := e.mustRun("backup", src, "--verify", "--json").stdout
	if err := json.Unmarshal([]byte(out), &backup); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	v := backup.Verify
	if len(v.Checked) != 2 || v.Packs != 2 || v.NeverVerified != 0 || len(v.Problems) != 0 || v.Stopped != "done" ||
		v.WindowBytes != v.TotalBytes || v.BudgetBytes != 200<<20 || v.BytesLeft != v.BudgetBytes-v.TotalBytes {
		t.Fatalf("backup --verify: %+v", v)
	}
	verified := map[string]bool{}
	for _, c := range v.Checked {
		verified[c.Pack] = c.OK
	}

	// Everything was read today: nothing is due.
	v = parseVerify(t, e.mustRun("verify", "--json").stdout)
	if len(v.Checked) != 0 || v.Bytes != 0 || v.Stopped != "done" || v.WindowBytes != v.TotalBytes {
		t.Fatalf("verify right after backup --verify: %+v", v)
	}
	if r := e.mustRun("verify"); !strings.Contains(r.stdout, "verified no pack: every pack was verified within the last day") ||
		!strings.Contains(r.stdout, "2 packs") {
		t.Fatalf("verify text output:\n%s", r.stdout)
	}

	// A new pack, damaged before verify read it.
	write("c", 1<<20, 3)
	e.mustRun("backup", src)
	var victim string
	listPacks(t, e, func(name string) {
		if _, ok := verified[name]; !ok && victim == "" {
			victim = name
		}
	})
	if victim == "" {
		t.Fatal("the second backup stored no new data pack")
	}
	flipByte(t, e, victim)
	r := e.run("verify")
	if r.code != 1 || !strings.Contains(r.stderr, "problem: corrupt-pack: data/"+victim) ||
		!strings.Contains(r.stderr, "verify found damage in 1 pack: data/"+victim) || !strings.Contains(r.stderr, "tidemark check --read-data") {
		t.Fatalf("verify of a damaged pack: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// Reported again, from the ledger, without downloading it again.
	r = e.run("verify", "--json")
	v = parseVerify(t, r.stdout)
	if r.code != 1 || len(v.Damaged) != 1 || v.Damaged[0].Object != "data/"+victim ||
		slices.ContainsFunc(v.Checked, func(c checkedOut) bool { return c.Pack == victim }) {
		t.Fatalf("verify --json after the damage was found: exit %d: %+v\n%s", r.code, v, r.stderr)
	}

	// A backup still succeeds and keeps its snapshot; verify's finding
	// makes it fail.
	write("d", 5000, 4)
	r = e.run("backup", src, "--verify")
	if r.code != 1 || !strings.Contains(r.stderr, "saved, but verify found damage in 1 pack: data/"+victim) ||
		!strings.Contains(r.stdout, "verify: ") {
		t.Fatalf("backup --verify with a damaged pack: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if n := len(e.snapshots()); n != 3 {
		t.Fatalf("%d snapshots, want 3", n)
	}

	if r := e.run("--no-cache", "verify"); r.code != 1 || !strings.Contains(r.stderr, "--no-cache") {
		t.Fatalf("verify --no-cache: exit %d: %s", r.code, r.stderr)
	}
	if r := e.run("verify", "--verify-budget", "5XB/day"); r.code != 1 ||
		!strings.Contains(r.stderr, "--verify-budget") || !strings.Contains(r.stderr, `"5XB/day"`) {
		t.Fatalf("verify with a bad budget: exit %d: %s", r.code, r.stderr)
	}
	if r := e.run("backup", src, "--verify", "--verify-requests", "ten/day"); r.code != 1 ||
		!strings.Contains(r.stderr, "--verify-requests") || len(e.snapshots()) != 3 {
		t.Fatalf("backup with a bad request budget: exit %d: %s", r.code, r.stderr)
	}
	if r := e.run("verify", "--verify-budget", "off"); r.code != 0 || !strings.Contains(r.stdout, "verify is off") {
		t.Fatalf("verify with the budget off: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
}

// listPacks calls fn with the name of each stored data pack.
func listPacks(t *testing.T, e *env, fn func(name string)) {
	t.Helper()
	err := filepath.Walk(filepath.Join(e.store, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			fn(filepath.Base(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// flipByte damages a stored data pack in its first blob.
func flipByte(t *testing.T, e *env, pack string) {
	t.Helper()
	rel, err := backend.ObjectPath(backend.Handle{Type: backend.Data, Name: pack})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.store, filepath.FromSlash(rel))
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/4] ^= 0x40
	if err := os.WriteFile(p, b, 0o400); err != nil {
		t.Fatal(err)
	}
}
