package state

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReopenKeepsData: everything written survives closing the database
// and opening the same file again.
func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	set := []byte("set")
	at := time.Date(2030, 3, 4, 5, 6, 7, 0, time.UTC)
	b := Backup{Snapshot: "snap", Time: at, Host: "h", Roots: []string{"/r"}, Mode: "full", Reason: "first backup",
		FilesNew: 10, BytesRead: 1 << 40, TotalFiles: 10, Duration: 3 * time.Second}
	in := DevIno{Dev: 1, Ino: 2}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.RecordBackup(ctx, b))
	must(db.PutDirStats(ctx, set, []DirStatsUpdate{{Path: "/r", Tree: treeID("r"), Entries: []byte("entries")}}))
	must(db.PutLinks(ctx, set, true, map[string][]DevIno{"/r": {in}}))
	must(db.SaveSettings(ctx, set, []byte(`{}`), "snap"))
	must(db.SetMeta(ctx, "k", "v"))
	must(db.MarkRebuilt(ctx, at))
	if _, ok, err := db.ReserveVerifyDownload(ctx, "pack", 5, at, VerifyLimits{MaxBytes: 10, MaxRequests: 1}); err != nil || !ok {
		t.Fatalf("reserve: %v %v", ok, err)
	}
	must(db.MarkVerified(ctx, "pack", at, ""))
	must(db.Close())

	db, err := Open(path)
	must(err)
	defer db.Close()
	h, err := db.History(ctx, 10)
	must(err)
	if len(h) != 1 {
		t.Fatalf("history after reopening: %+v", h)
	}
	sameBackup(t, h[0], b)
	wantDirStats(t, db, set, "/r", treeID("r"), []byte("entries"))
	wantHasDirStats(t, db, set, true)
	wantLinks(t, db, set, []DevIno{in}, nil)
	wantLastSnapshot(t, db, set, "snap")
	if v, err := db.Meta(ctx, "k"); err != nil || v != "v" {
		t.Fatalf("meta after reopening: %q %v", v, err)
	}
	if r, err := db.Rebuilt(ctx); err != nil || !r.Equal(at) {
		t.Fatalf("rebuilt after reopening: %v %v", r, err)
	}
	if bytes, n, err := db.VerifySpent(ctx, time.Time{}); err != nil || bytes != 5 || n != 1 {
		t.Fatalf("verify ledger after reopening: %d bytes in %d (%v)", bytes, n, err)
	}
	if vp, err := db.VerifiedPacks(ctx); err != nil || len(vp) != 1 || !vp["pack"].At.Equal(at) {
		t.Fatalf("verified packs after reopening: %+v %v", vp, err)
	}
}

// TestOpenCreatesDirectories: the cache directory may not exist yet; Open
// creates it, private to the user (the stat cache lists file names).
func TestOpenCreatesDirectories(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache", "tidemark", "0123abcd")
	path := filepath.Join(dir, "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("created %s with mode %v, want a directory for the user alone", dir, fi.Mode())
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
}

// TestOpenSpecialPaths: the path is used as is, whatever characters it
// holds. Open builds a SQLite URI from it, where '?', '#' and '%' would
// otherwise start the query or a fragment or an escape: another file
// would be opened, shared by every cache directory with the same prefix,
// and the pragmas after it lost.
func TestOpenSpecialPaths(t *testing.T) {
	for _, name := range []string{"a?b", "a?b=c&d", "a#b", "a%41b", "a%", "a b", "ünïcode", "a;b", "file:x"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			parent := t.TempDir()
			path := filepath.Join(parent, name, "state.db")
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.SetMeta(ctx, "name", name); err != nil {
				t.Fatal(err)
			}
			var timeout int
			var mode string
			if err := db.db.QueryRow(`PRAGMA busy_timeout`).Scan(&timeout); err != nil {
				t.Fatal(err)
			}
			if err := db.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
				t.Fatal(err)
			}
			if timeout != 30000 || mode != "wal" {
				t.Errorf("busy_timeout %d, journal_mode %s: the connection settings were lost", timeout, mode)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("database not at its path: %v", err)
			}
			ents, err := os.ReadDir(parent)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 || ents[0].Name() != name {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Fatalf("%s holds %q, want only %q", parent, names, name)
			}
			db, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if v, err := db.Meta(ctx, "name"); err != nil || v != name {
				t.Fatalf("after reopening: %q %v", v, err)
			}
		})
	}
}

// TestOpenSpecialPathsSeparate: two cache directories that differ after a
// '?' are two databases.
func TestOpenSpecialPathsSeparate(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	var dbs []*DB
	for _, name := range []string{"x?1", "x?2"} {
		db, err := Open(filepath.Join(parent, name, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.SetMeta(ctx, "name", name); err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, db)
	}
	for i, want := range []string{"x?1", "x?2"} {
		if v, err := dbs[i].Meta(ctx, "name"); err != nil || v != want {
			t.Fatalf("database %s holds %q (%v)", want, v, err)
		}
	}
}

// TestOpenErrors: paths that cannot hold a database give an error naming
// the path.
func TestOpenErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T) string // returns the path to open
		is    error                     // wrapped cause, if known
	}{
		{"parent is a file", func(t *testing.T) string {
			file := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(file, "state.db")
		}, syscall.ENOTDIR},
		{"ancestor is a file", func(t *testing.T) string {
			file := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(file, "sub", "state.db")
		}, syscall.ENOTDIR},
		{"path is a directory", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "state.db")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			return dir
		}, nil},
		{"unwritable directory", func(t *testing.T) string {
			if os.Geteuid() == 0 {
				t.Skip("root writes anywhere")
			}
			dir := filepath.Join(t.TempDir(), "ro")
			if err := os.Mkdir(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "state.db")
		}, nil},
		{"missing directory under an unwritable one", func(t *testing.T) string {
			if os.Geteuid() == 0 {
				t.Skip("root writes anywhere")
			}
			dir := filepath.Join(t.TempDir(), "ro")
			if err := os.Mkdir(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "missing", "state.db")
		}, syscall.EACCES},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.setup(t)
			db, err := Open(path)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%s) succeeded", path)
			}
			if db != nil {
				t.Fatalf("Open(%s) returned a database with the error %v", path, err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
		})
	}
}

// TestOpenNotADatabase: a file that is not a SQLite database (at least a
// page long; SQLite takes shorter files for empty databases) is refused
// with an error, and left as it was.
func TestOpenNotADatabase(t *testing.T) {
	header := []byte("SQLite format 3\x00")
	cases := []struct {
		name    string
		content []byte
	}{
		{"text", bytes.Repeat([]byte("this is not a database\n"), 400)},
		{"zeros", make([]byte, 8192)},
		{"pseudo-random", func() []byte {
			b := make([]byte, 8192)
			x := uint32(2463534242)
			for i := range b {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				b[i] = byte(x)
			}
			return b
		}()},
		{"header then garbage", append(append([]byte{}, header...), bytes.Repeat([]byte{0xff}, 8192)...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(path, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path)
			if err == nil {
				db.Close()
				t.Fatal("Open of a file that is not a database succeeded")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.content) {
				t.Fatal("Open changed a file that is not a database")
			}
		})
	}
}

// TestOpenEmptyFile: an empty file is an empty SQLite database, so an
// interrupted first Open does not leave the cache unusable.
func TestOpenEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.SetMeta(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Meta(context.Background(), "k"); err != nil || v != "v" {
		t.Fatalf("Meta = %q, %v", v, err)
	}
}

// TestTwoHandles: what one handle (process) writes, another open on the
// same file reads.
func TestTwoHandles(t *testing.T) {
	ctx := context.Background()
	first, path := openTemp(t)
	second, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	set := []byte("set")
	putDirStats(t, first, set, DirStatsUpdate{Path: "/p", Tree: treeID("p"), Entries: []byte("p")})
	wantDirStats(t, second, set, "/p", treeID("p"), []byte("p"))
	if err := second.SetMeta(ctx, "k", "from second"); err != nil {
		t.Fatal(err)
	}
	if v, err := first.Meta(ctx, "k"); err != nil || v != "from second" {
		t.Fatalf("Meta through the first handle = %q, %v", v, err)
	}
}
