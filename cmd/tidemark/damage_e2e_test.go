//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/gentree"
)

// damage is one way a stored object can go bad.
type damage struct {
	name  string
	apply func(path string) error
}

var damages = []damage{
	{"bitflip", func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0x10
		return os.WriteFile(p, b, 0o644)
	}},
	{"truncate", func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		return os.Truncate(p, fi.Size()/2)
	}},
	{"zero", func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		return os.WriteFile(p, make([]byte, fi.Size()), 0o644)
	}},
	{"delete", os.Remove},
}

// largest returns the largest stored object under dir.
func (e *env) largest(dir string) string {
	best, size := "", int64(-1)
	for _, p := range e.storedFiles(dir) {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			best, size = p, fi.Size()
		}
	}
	return best
}

// damagedPacks lists the packs check --read-data blames.
func (e *env) damagedPacks() []string {
	r := e.run("check", "--read-data", "--json")
	var out struct {
		Problems []struct{ Kind, Object string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		e.t.Fatalf("check --json: %v: %s", err, r.stdout)
	}
	var packs []string
	for _, p := range out.Problems {
		ns, id, ok := strings.Cut(p.Object, "/")
		if ok && (ns == "data" || ns == "trees") && !slices.Contains(packs, id) {
			packs = append(packs, id)
		}
	}
	return packs
}

// TestDamageNeverSpreads damages a data pack or a tree pack in each way,
// with an empty and with a warm cache, runs the documented repair (check,
// repair index, repair packs, repair snapshots with or without --forget),
// and then requires that new backups of the tree, unchanged and changed,
// check clean and restore byte for byte: damage to old data must never
// leak into new snapshots, also when the damaged snapshot stays and is the
// new backup's parent.
func TestDamageNeverSpreads(t *testing.T) {
	var matrix []string
	for _, target := range []string{"data", "trees", "index", "snapshots"} {
		for _, d := range damages {
			for _, cache := range []string{"empty", "warm"} {
				for _, forget := range []bool{true, false} {
					name := fmt.Sprintf("%s/%s/%s-cache", target, d.name, cache)
					if !forget {
						name += "/damaged-parent-kept"
					}
					ok := t.Run(name, func(t *testing.T) { damageCase(t, target, d, cache == "warm", forget) })
					verdict := "restorable, check clean"
					if !ok {
						verdict = "FAILED"
					}
					matrix = append(matrix, fmt.Sprintf("%-48s %s", name, verdict))
				}
			}
		}
	}
	for _, cache := range []string{"empty", "warm"} {
		name := "junk files/" + cache + "-cache"
		ok := t.Run(name, func(t *testing.T) { damageCase(t, "junk", damage{}, cache == "warm", true) })
		verdict := "restorable, check clean"
		if !ok {
			verdict = "FAILED"
		}
		matrix = append(matrix, fmt.Sprintf("%-48s %s", name, verdict))
	}
	t.Logf("damage x cache -> outcome after repair and new backups:\n%s", strings.Join(matrix, "\n"))
}

func damageCase(t *testing.T, target string, d damage, warm, forget bool) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 60, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "big.bin"), gentree.RandomBytes(8<<20, 4), 0o644); err != nil {
		t.Fatal(err)
	}
	// Files younger than a second are always read again (their ctime
	// could still change within the clock tick); let the second backup
	// take them from its parent, as a backup of an old tree does.
	time.Sleep(1100 * time.Millisecond)
	e.mustRun("init")
	e.mustRun("backup", src)
	e.mustRun("backup", src)
	var victim string
	if target == "junk" {
		// Files no backup writes, under every kind of object.
		for _, dir := range []string{"data", "trees", "index", "snapshots", "keys", "locks"} {
			if err := os.WriteFile(filepath.Join(e.store, dir, "junk"), []byte("not an object"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		if victim = e.largest(target); victim == "" {
			t.Fatalf("no %s object stored", target)
		}
		if err := d.apply(victim); err != nil {
			t.Fatal(err)
		}
	}
	if !warm {
		if err := os.RemoveAll(e.cache); err != nil {
			t.Fatal(err)
		}
		os.Mkdir(e.cache, 0o700)
	}
	r := e.run("check", "--read-data")
	// A deleted snapshot record is a forgotten snapshot, not damage.
	if r.code == 0 && target != "junk" && (target != "snapshots" || d.name != "delete") {
		t.Fatalf("check --read-data passed with %s damaged (%s):\n%s", victim, d.name, r.stdout)
	}
	if target == "junk" && (r.code != 0 || !strings.Contains(r.stderr, "warning: index/junk is not a Tidemark object") ||
		!strings.Contains(r.stderr, "warning: snapshots/junk is not a Tidemark object")) {
		t.Fatalf("check should pass and name the junk files among the objects it lists:\n%s", r.stderr)
	}
	if (target == "data" || target == "trees") && d.name != "delete" && !strings.Contains(r.stderr, "tidemark repair packs "+target+"/"+filepath.Base(victim)) {
		t.Fatalf("check does not say how to repair the damaged pack:\n%s", r.stderr)
	}
	e.mustRun("repair", "index")
	if packs := e.damagedPacks(); len(packs) > 0 {
		e.mustRun(append([]string{"repair", "packs"}, packs...)...)
	}
	if forget {
		e.mustRun("repair", "snapshots", "--forget")
	} else {
		e.mustRun("repair", "snapshots")
	}

	backup := func() string {
		t.Helper()
		var b struct{ Snapshot string }
		if err := json.Unmarshal([]byte(e.mustRun("backup", "--json", src).stdout), &b); err != nil {
			t.Fatal(err)
		}
		return b.Snapshot
	}
	// With the damaged snapshots kept, check still reports them, and
	// "latest" may be ambiguous (a damaged record's time is unknown): the
	// new snapshot is restored by its ID.
	restoreAndCompare := func(label, id string) {
		t.Helper()
		if r := e.run("check", "--read-data"); r.code != 0 && forget {
			t.Fatalf("%s: check --read-data: exit %d\n%s%s", label, r.code, r.stdout, r.stderr)
		}
		target := filepath.Join(e.dir, "restore-"+label)
		e.mustRun("restore", id, "--target", target)
		if err := gentree.Compare(src, filepath.Join(target, src)); err != nil {
			t.Fatalf("%s: restored tree differs: %v", label, err)
		}
	}
	restoreAndCompare("unchanged", backup())
	if _, err := gentree.Modify(src, 5, 7); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	restoreAndCompare("changed", backup())
}

// TestJournalAfterRepair: a journal backup reuses its parent's untouched
// subtrees by ID, trusting every blob below them. After a pack is lost and
// `repair index` drops it, that trust is gone: the next backup walks the
// tree, reads the files that lost data, and says why; the one after uses
// the journal again.
func TestJournalAfterRepair(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	state := filepath.Join(e.dir, "state")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 60, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "big.bin"), gentree.RandomBytes(8<<20, 6), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	startWatch(t, state, src)
	e.mustRun("init")
	e.backupJSON("--state", state, src)
	if b := e.backupJSON("--state", state, src); b.Scan.Mode != "journal" {
		t.Fatalf("second backup: %+v", b.Scan)
	}
	if err := os.Remove(e.largest("data")); err != nil {
		t.Fatal(err)
	}
	e.mustRun("repair", "index")
	b := e.backupJSON("--state", state, src)
	if b.Scan.Mode != "parent-assisted" || !strings.Contains(b.Scan.Reason, "index entries were removed") {
		t.Fatalf("backup after the repair: %+v", b.Scan)
	}
	target := filepath.Join(e.dir, "restore")
	e.mustRun("restore", "latest", "--target", target)
	if err := gentree.Compare(src, filepath.Join(target, src)); err != nil {
		t.Fatalf("restored tree differs: %v", err)
	}
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("after the repair"), 0o644)
	if b := e.backupJSON("--state", state, src); b.Scan.Mode != "journal" {
		t.Fatalf("the backup after that should use the journal again: %+v", b.Scan)
	}
}

// TestCheckIgnoresCachedCopies: with a warm cache and a bit flipped in a
// stored tree pack, check (without --read-data) finds the damage every
// other host would meet, unless told to trust the cache.
func TestCheckIgnoresCachedCopies(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 30, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("init")
	e.mustRun("backup", src)
	e.mustRun("check") // fills the cache with the tree packs
	if err := damages[0].apply(e.largest("trees")); err != nil {
		t.Fatal(err)
	}
	r := e.run("check")
	if r.code != exitFailure || !strings.Contains(r.stderr, "corrupt-tree") {
		t.Fatalf("check with a warm cache over a damaged tree pack: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.run("check", "--with-cache"); r.code != 0 {
		t.Fatalf("check --with-cache reads the intact cached copy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
