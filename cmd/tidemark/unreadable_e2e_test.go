//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// damagedRecordEnv makes a repository with n snapshots of a small tree
// (each backup adds a file), flips a bit in the stored record of snapshot
// victim (index in time order) and switches to a fresh cache directory, as
// another machine would see the repository: a cached intact copy would hide
// the damage. It returns the snapshot IDs in time order, the damaged
// record's path and the source directory.
func damagedRecordEnv(t *testing.T, n, victim int) (e *env, ids []string, record, src string) {
	t.Helper()
	e = newEnv(t)
	src = filepath.Join(e.dir, "src")
	e.mustRun("init")
	for i := range n {
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i))), []byte(strings.Repeat("x", i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		e.mustRun("backup", src)
	}
	for _, sn := range e.snapshots() {
		ids = append(ids, sn.ID)
	}
	if len(ids) != n {
		t.Fatalf("%d snapshots, want %d", len(ids), n)
	}
	record = filepath.Join(e.store, "snapshots", ids[victim])
	flipBit(t, record, 40)
	e.cache = filepath.Join(e.dir, "cache-other-host")
	if err := os.Mkdir(e.cache, 0o700); err != nil {
		t.Fatal(err)
	}
	return e, ids, record, src
}

// flipBit flips the lowest bit of the byte at off in the file at path.
func flipBit(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 1
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func wantIn(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Fatalf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// TestLatestOverUnreadableRecord: when the newest snapshot record is
// damaged, every command resolving "latest" warns, naming the record and
// why it is unreadable, since it cannot know that record's time; restore
// refuses "latest" and asks for an ID, and restores by ID as before.
func TestLatestOverUnreadableRecord(t *testing.T) {
	e, ids, _, src := damagedRecordEnv(t, 2, 1)
	older, newest := ids[0][:8], ids[1][:8]
	warning := "warning: snapshot record " + newest
	why := "content does not match its name"

	target := filepath.Join(e.dir, "restore")
	r := e.run("restore", "latest", "--target", target)
	if r.code != exitFailure {
		t.Fatalf("restore latest over a damaged newest record: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	wantIn(t, "restore latest", r.stderr, warning, why, "snapshot record "+newest+" is unreadable, so the latest snapshot is not known",
		"newest readable one is "+older, "give a snapshot ID explicitly")
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Fatalf("restore latest failed but wrote %d entries", len(ents))
	}

	for _, args := range [][]string{{"ls", "latest"}, {"stats", "latest"}, {"diff", older, "latest"}} {
		r := e.mustRun(args...)
		wantIn(t, strings.Join(args, " "), r.stderr, warning, why, `"latest" (`+older)
	}

	// By ID: no warning, the older snapshot restores; the damaged one says
	// why it cannot.
	r = e.mustRun("restore", older, "--target", target)
	if strings.Contains(r.stderr, "warning") {
		t.Fatalf("restore by ID warned: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(target, src, "fa")); err != nil {
		t.Fatalf("restore by ID: %v", err)
	}
	r = e.run("restore", newest, "--target", filepath.Join(e.dir, "restore2"))
	if r.code != exitFailure {
		t.Fatalf("restore of the damaged snapshot: exit %d", r.code)
	}
	wantIn(t, "restore of the damaged snapshot", r.stderr, "load snapshot "+newest, why)
}

// TestRepairSnapshotsForgetsDamagedRecord: a damaged record blocks prune
// and policy forgets leave it alone; repair snapshots names it (ID, size,
// error), --dry-run removes nothing, --forget removes it, and prune works
// again.
func TestRepairSnapshotsForgetsDamagedRecord(t *testing.T) {
	e, ids, record, _ := damagedRecordEnv(t, 3, 1)
	fi, err := os.Stat(record)
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()
	named := ids[1] + " (" + strconv.FormatInt(size, 10) + " bytes): snapshots/" + ids[1] + ": content does not match its name"

	if r := e.run("prune"); r.code != exitFailure || !strings.Contains(r.stderr, "`tidemark forget "+ids[1][:8]+"` removes it") {
		t.Fatalf("prune with a damaged record: exit %d %s", r.code, r.stderr)
	}
	r := e.mustRun("forget", "--keep-last", "1")
	wantIn(t, "forget --keep-last 1", r.stderr, "left alone: `tidemark forget "+ids[1][:8]+"` removes it")
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("forget rules removed the damaged record: %v", err)
	}

	out := e.mustRun("repair", "snapshots").stdout
	wantIn(t, "repair snapshots", out, "damaged snapshot record "+named, "left alone: `tidemark repair snapshots --forget` removes it")
	out = e.mustRun("repair", "snapshots", "--forget", "--dry-run").stdout
	wantIn(t, "repair snapshots --forget --dry-run", out, "damaged snapshot record "+named, "--forget would remove 1 damaged snapshot records")
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("--dry-run removed the damaged record: %v", err)
	}

	out = e.mustRun("repair", "snapshots", "--forget").stdout
	wantIn(t, "repair snapshots --forget", out, "removed damaged snapshot record "+named, "removed 1 damaged snapshot records")
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Fatalf("repair snapshots --forget left the damaged record: %v", err)
	}
	e.mustRun("prune")
	e.mustRun("check", "--read-data")
	if r := e.mustRun("restore", "latest", "--target", filepath.Join(e.dir, "restore")); strings.Contains(r.stderr, "warning") {
		t.Fatalf("restore latest after the repair warned: %s", r.stderr)
	}
}

// TestForgetByID: forget removes the snapshots named by ID or unique
// prefix, a damaged record included, after resolving every name; IDs and
// rules together are refused.
func TestForgetByID(t *testing.T) {
	e, ids, record, _ := damagedRecordEnv(t, 3, 1)
	if r := e.run("forget", "--keep-last", "1", ids[0][:8]); r.code != exitFailure || !strings.Contains(r.stderr, "either snapshot IDs or --keep-*/--retention rules, not both") {
		t.Fatalf("forget with IDs and rules: exit %d %s", r.code, r.stderr)
	}
	if r := e.run("forget", ids[0][:8], "ffffffffff"); r.code != exitFailure || !strings.Contains(r.stderr, `snapshot "ffffffffff": no matching snapshot`) {
		t.Fatalf("forget with an unknown ID: exit %d %s", r.code, r.stderr)
	}
	if r := e.run("forget", "latest"); r.code != exitFailure || !strings.Contains(r.stderr, `"latest" is not accepted`) {
		t.Fatalf("forget latest: exit %d %s", r.code, r.stderr)
	}
	out := e.mustRun("forget", "--dry-run", ids[0][:8], ids[1][:10]).stdout
	wantIn(t, "forget --dry-run", out, "would remove snapshot "+ids[0][:8], "would remove unreadable snapshot record "+ids[1], "dry run: 2 snapshots would be forgotten")
	if n := len(e.storedFiles("snapshots")); n != 3 {
		t.Fatalf("dry run removed records: %d left", n)
	}

	out = e.mustRun("forget", ids[0][:8], ids[1][:8], ids[0]).stdout
	wantIn(t, "forget IDs", out, "removed snapshot "+ids[0][:8], "removed unreadable snapshot record "+ids[1]+" (", "content does not match its name", "forgot 2 snapshots")
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Fatalf("forget left the damaged record: %v", err)
	}
	if sns := e.snapshots(); len(sns) != 1 || sns[0].ID != ids[2] {
		t.Fatalf("after forget: %+v", sns)
	}
	e.mustRun("prune")
	e.mustRun("check", "--read-data")
}
