package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
)

// treeID is a distinct tree ID per label.
func treeID(label string) blob.ID { return blob.ID(sha256.Sum256([]byte(label))) }

// wantDirStats checks one stat cache row.
func wantDirStats(t *testing.T, db *DB, set []byte, path string, tree blob.ID, entries []byte) {
	t.Helper()
	gotTree, gotEntries, ok, err := db.DirStats(set, path)
	if err != nil {
		t.Fatalf("DirStats(%x, %q): %v", set, path, err)
	}
	if !ok {
		t.Fatalf("DirStats(%x, %q): no row", set, path)
	}
	if gotTree != tree || !bytes.Equal(gotEntries, entries) {
		t.Fatalf("DirStats(%x, %q) = %s %q, want %s %q", set, path, gotTree.Short(), gotEntries, tree.Short(), entries)
	}
}

// wantNoDirStats checks that a row is missing.
func wantNoDirStats(t *testing.T, db *DB, set []byte, path string) {
	t.Helper()
	tree, entries, ok, err := db.DirStats(set, path)
	if err != nil {
		t.Fatalf("DirStats(%x, %q): %v", set, path, err)
	}
	if ok || !tree.IsNull() || entries != nil {
		t.Fatalf("DirStats(%x, %q) = %s %q %v, want no row", set, path, tree.Short(), entries, ok)
	}
}

func wantHasDirStats(t *testing.T, db *DB, set []byte, want bool) {
	t.Helper()
	has, err := db.HasDirStats(set)
	if err != nil {
		t.Fatal(err)
	}
	if has != want {
		t.Fatalf("HasDirStats(%x) = %v, want %v", set, has, want)
	}
}

func putDirStats(t *testing.T, db *DB, set []byte, rows ...DirStatsUpdate) {
	t.Helper()
	if err := db.PutDirStats(context.Background(), set, rows); err != nil {
		t.Fatal(err)
	}
}

// TestDirStatsRoundTrip: each row comes back with the tree ID it was
// written with, keyed by the exact path bytes.
func TestDirStatsRoundTrip(t *testing.T) {
	db, _ := openTemp(t)
	set := []byte("set-0123456789ab")
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1<<18)
	rows := []DirStatsUpdate{
		{Path: "", Tree: treeID("root"), Entries: []byte("root entries")},
		{Path: "/", Tree: treeID("slash"), Entries: []byte("slash entries")},
		{Path: "/home/ann", Tree: treeID("ann"), Entries: []byte{0, 0, 0}},
		// Paths differing only by case, a trailing slash or bytes that
		// are not UTF-8 are different directories.
		{Path: "/home/Ann", Tree: treeID("Ann"), Entries: []byte("Ann")},
		{Path: "/home/ann/", Tree: treeID("ann/"), Entries: []byte("ann/")},
		{Path: "/bin\xff\x00x", Tree: treeID("binary"), Entries: []byte("binary")},
		{Path: "/big", Tree: treeID("big"), Entries: big},
		{Path: "/null tree", Tree: blob.Null, Entries: []byte("null")},
	}
	putDirStats(t, db, set, rows...)
	for _, r := range rows {
		wantDirStats(t, db, set, r.Path, r.Tree, r.Entries)
	}
	for _, p := range []string{"/home", "/home/ann/x", "/HOME/ANN", "/bin\xff"} {
		wantNoDirStats(t, db, set, p)
	}
}

// TestDirStatsEmptyEntries: a row with zero-length entries is still a row.
func TestDirStatsEmptyEntries(t *testing.T) {
	db, _ := openTemp(t)
	set := []byte("s")
	putDirStats(t, db, set, DirStatsUpdate{Path: "/e", Tree: treeID("e"), Entries: []byte{}})
	tree, entries, ok, err := db.DirStats(set, "/e")
	if err != nil || !ok || tree != treeID("e") || len(entries) != 0 {
		t.Fatalf("DirStats = %s %q %v %v, want the row with no entries", tree.Short(), entries, ok, err)
	}
}

// TestDirStatsOverwrite: writing a path again replaces its row, across
// calls and within one call (the last update wins).
func TestDirStatsOverwrite(t *testing.T) {
	db, _ := openTemp(t)
	set := []byte("set")
	putDirStats(t, db, set,
		DirStatsUpdate{Path: "/a", Tree: treeID("a1"), Entries: []byte("a1")},
		DirStatsUpdate{Path: "/b", Tree: treeID("b1"), Entries: []byte("b1")})
	putDirStats(t, db, set, DirStatsUpdate{Path: "/a", Tree: treeID("a2"), Entries: []byte("a2, longer than before")})
	wantDirStats(t, db, set, "/a", treeID("a2"), []byte("a2, longer than before"))
	wantDirStats(t, db, set, "/b", treeID("b1"), []byte("b1"))

	putDirStats(t, db, set,
		DirStatsUpdate{Path: "/b", Tree: treeID("b2"), Entries: []byte("b2")},
		DirStatsUpdate{Path: "/b", Tree: treeID("b3"), Entries: []byte("b3")})
	wantDirStats(t, db, set, "/b", treeID("b3"), []byte("b3"))
	wantDirStats(t, db, set, "/a", treeID("a2"), []byte("a2, longer than before"))
}

// TestDirStatsSetsIsolated: the same path in different backup sets are
// different rows; writing one set never shows in another.
func TestDirStatsSetsIsolated(t *testing.T) {
	sets := [][]byte{
		[]byte("0123456789abcdef"),
		[]byte("0123456789abcdeg"), // differs in the last byte
		[]byte("0123456789abcde"),  // a prefix of the first
		{0},
		{0, 0},
	}
	db, _ := openTemp(t)
	for _, set := range sets {
		wantHasDirStats(t, db, set, false)
	}
	for i, set := range sets {
		putDirStats(t, db, set, DirStatsUpdate{Path: "/same", Tree: treeID(fmt.Sprint(i)), Entries: []byte{byte(i)}})
		// Only the sets written so far have rows.
		for j, other := range sets {
			wantHasDirStats(t, db, other, j <= i)
			if j > i {
				wantNoDirStats(t, db, other, "/same")
			}
		}
	}
	for i, set := range sets {
		wantDirStats(t, db, set, "/same", treeID(fmt.Sprint(i)), []byte{byte(i)})
	}
	// Overwriting one set's row leaves the others alone.
	putDirStats(t, db, sets[0], DirStatsUpdate{Path: "/same", Tree: treeID("new"), Entries: []byte("new")})
	wantDirStats(t, db, sets[0], "/same", treeID("new"), []byte("new"))
	for i, set := range sets[1:] {
		wantDirStats(t, db, set, "/same", treeID(fmt.Sprint(i+1)), []byte{byte(i + 1)})
	}
}

// TestHasDirStats: a set has stat rows once any row was written for it; an
// empty update writes nothing.
func TestHasDirStats(t *testing.T) {
	db, _ := openTemp(t)
	set, other := []byte("set"), []byte("other")
	wantHasDirStats(t, db, set, false)
	if err := db.PutDirStats(context.Background(), set, nil); err != nil {
		t.Fatalf("empty update: %v", err)
	}
	wantHasDirStats(t, db, set, false)
	putDirStats(t, db, set, DirStatsUpdate{Path: "/x", Tree: treeID("x"), Entries: []byte("x")})
	wantHasDirStats(t, db, set, true)
	wantHasDirStats(t, db, other, false)
	putDirStats(t, db, set, DirStatsUpdate{Path: "/y", Tree: treeID("y"), Entries: []byte("y")})
	wantHasDirStats(t, db, set, true)
}

// TestPutDirStatsAtomic: PutDirStats writes its rows in one transaction,
// so a failing row or a cancelled context leaves none of the batch.
func TestPutDirStatsAtomic(t *testing.T) {
	db, _ := openTemp(t)
	set := []byte("set")
	putDirStats(t, db, set, DirStatsUpdate{Path: "/kept", Tree: treeID("old"), Entries: []byte("old")})

	// nil entries are NULL, which the schema refuses: the last row fails.
	err := db.PutDirStats(context.Background(), set, []DirStatsUpdate{
		{Path: "/kept", Tree: treeID("new"), Entries: []byte("new")},
		{Path: "/fresh", Tree: treeID("fresh"), Entries: []byte("fresh")},
		{Path: "/bad", Tree: treeID("bad")},
	})
	if err == nil {
		t.Fatal("row with NULL entries accepted")
	}
	wantDirStats(t, db, set, "/kept", treeID("old"), []byte("old"))
	wantNoDirStats(t, db, set, "/fresh")
	wantNoDirStats(t, db, set, "/bad")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.PutDirStats(ctx, []byte("other"), []DirStatsUpdate{{Path: "/c", Tree: treeID("c"), Entries: []byte("c")}}); err == nil {
		t.Fatal("PutDirStats with a cancelled context succeeded")
	}
	wantHasDirStats(t, db, []byte("other"), false)
}

// TestDirStatsBadTree: a row whose tree column is not an ID (a foreign or
// damaged database) reads as missing, so the directory is read again.
func TestDirStatsBadTree(t *testing.T) {
	db, _ := openTemp(t)
	set := []byte("set")
	for _, tree := range [][]byte{{}, []byte("short"), bytes.Repeat([]byte{1}, blob.IDSize+1)} {
		path := fmt.Sprintf("/tree-%d", len(tree))
		if _, err := db.db.Exec(`INSERT INTO dirstats (backup_set, path, tree, entries) VALUES (?,?,?,?)`,
			set, []byte(path), tree, []byte("e")); err != nil {
			t.Fatal(err)
		}
		wantNoDirStats(t, db, set, path)
	}
}

// TestDirStatsConcurrent: the archiver's prefetchers call DirStats from
// several goroutines; they must run alongside writers (PutDirStats of the
// same and another set, through this handle and a second one as another
// process would) and only ever see whole rows.
func TestDirStatsConcurrent(t *testing.T) {
	db, path := openTemp(t)
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	set, otherSet := []byte("set"), []byte("other set")
	const dirs, generations, readers = 20, 15, 6
	// Each row's entries name its generation, and its tree is derived
	// from them, so a reader can tell a torn or mixed row.
	row := func(gen, dir int) DirStatsUpdate {
		entries := fmt.Sprintf("gen %d dir %d", gen, dir)
		return DirStatsUpdate{Path: fmt.Sprintf("/d%d", dir), Tree: treeID(entries), Entries: []byte(entries)}
	}
	batch := func(gen int) []DirStatsUpdate {
		var rows []DirStatsUpdate
		for d := range dirs {
			rows = append(rows, row(gen, d))
		}
		return rows
	}
	done := make(chan struct{})
	var writers, rdrs sync.WaitGroup
	writers.Go(func() {
		for gen := range generations {
			if err := db.PutDirStats(ctx, set, batch(gen)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	writers.Go(func() {
		for gen := range generations {
			if err := other.PutDirStats(ctx, otherSet, batch(gen)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for r := range readers {
		rdrs.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				d := (i + r) % dirs
				tree, entries, ok, err := db.DirStats(set, fmt.Sprintf("/d%d", d))
				if err != nil {
					t.Error(err)
					return
				}
				if ok && tree != treeID(string(entries)) {
					t.Errorf("row /d%d: tree %s does not belong to entries %q", d, tree.Short(), entries)
					return
				}
				if _, err := db.HasDirStats(set); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(done)
	rdrs.Wait()
	if t.Failed() {
		return
	}
	for _, h := range []*DB{db, other} {
		for _, s := range [][]byte{set, otherSet} {
			for d := range dirs {
				r := row(generations-1, d)
				wantDirStats(t, h, s, r.Path, r.Tree, r.Entries)
			}
		}
	}
}

// TestStagedDirStats: rows staged by a running backup are invisible until
// committed; a failed run's rows are dropped, and so are rows a run that
// died left a day ago, but not another running backup's.
func TestStagedDirStats(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	set := []byte("set")
	row := func(path string, b byte) DirStatsUpdate {
		return DirStatsUpdate{Path: path, Tree: blob.ID{b}, Entries: []byte{b}}
	}
	if err := db.StageDirStats(ctx, 1, set, []DirStatsUpdate{row("/a", 1), row("/b", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := db.StageDirStats(ctx, 2, set, []DirStatsUpdate{row("/c", 2)}); err != nil {
		t.Fatal(err)
	}
	if has, _ := db.HasDirStats(set); has {
		t.Fatal("staged rows are visible before their commit")
	}
	// A row staged twice by one run: the later one counts.
	if err := db.StageDirStats(ctx, 1, set, []DirStatsUpdate{row("/a", 3)}); err != nil {
		t.Fatal(err)
	}
	if err := db.CommitDirStats(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]byte{"/a": 3, "/b": 1} {
		tree, entries, ok, err := db.DirStats(set, path)
		if err != nil || !ok || tree != (blob.ID{want}) || len(entries) != 1 || entries[0] != want {
			t.Fatalf("%s after commit: %v %v %v %v", path, tree, entries, ok, err)
		}
	}
	if _, _, ok, _ := db.DirStats(set, "/c"); ok {
		t.Fatal("another run's staged row was committed")
	}
	// Run 3 fails: its rows go, run 2's stay (it is still running).
	if err := db.StageDirStats(ctx, 3, set, []DirStatsUpdate{row("/d", 4)}); err != nil {
		t.Fatal(err)
	}
	if err := db.DropStagedDirStats(ctx, 3); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.db.QueryRow(`SELECT COUNT(*) FROM dirstats_staged`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d staged rows left (%v), want run 2's one", n, err)
	}
	// Rows a dead run left more than a day ago are dropped too.
	if _, err := db.db.Exec(`UPDATE dirstats_staged SET created = ?`, time.Now().Add(-25*time.Hour).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if err := db.DropStagedDirStats(ctx, 99); err != nil {
		t.Fatal(err)
	}
	if err := db.db.QueryRow(`SELECT COUNT(*) FROM dirstats_staged`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d stale staged rows left (%v)", n, err)
	}
}
