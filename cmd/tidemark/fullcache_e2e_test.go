//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// smallCache mounts a tmpfs of size bytes over the env's cache directory,
// unmounted when the test ends (before its temporary directory goes).
func smallCache(t *testing.T, e *env, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs for the cache directory needs root")
	}
	if err := unix.Mount("tmpfs", e.cache, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs for the cache directory: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(e.cache, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", e.cache, err)
		}
	})
}

// fillLeaving fills the filesystem of dir with one file until only free
// bytes are left, replacing an earlier filler.
func fillLeaving(t *testing.T, dir string, free int64) {
	t.Helper()
	filler := filepath.Join(dir, "filler")
	if err := os.Remove(filler); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * st.Bsize
	if avail <= free {
		t.Fatalf("only %d bytes free in %s before filling", avail, dir)
	}
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, avail-free)); err != nil {
		t.Fatal(err)
	}
}

// manyDirs writes n directories (named prefix and a number) of one small
// file each below root, so that a backup of root has a stat cache update
// far larger than a few pages.
func manyDirs(t *testing.T, root, prefix string, n int) {
	t.Helper()
	for i := range n {
		d := filepath.Join(root, fmt.Sprintf("%s%04d", prefix, i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "file"), []byte(fmt.Sprintf("content %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackupCacheDiskFull: with the cache directory on a full filesystem,
// a backup that saved its snapshot but could not record it in the state
// database exits 3 and says so: the snapshot ID, that it was saved, the
// database's path, what was being written, why, and what that costs the
// next backup, which then behaves as said. A backup that fails before its
// snapshot says that none was written.
func TestBackupCacheDiskFull(t *testing.T) {
	e := newEnv(t)
	smallCache(t, e, 16<<20)
	src := filepath.Join(e.dir, "src")
	manyDirs(t, src, "first", 10)
	e.mustRun("init")
	e.mustRun("backup", src)
	ents, err := os.ReadDir(e.cache)
	if err != nil || len(ents) != 1 {
		t.Fatalf("cache directory: %v %v", ents, err)
	}
	db := filepath.Join(e.cache, ents[0].Name(), "state.db")

	// 128 KiB: room for opening the state database (its 32 KiB shared
	// memory file), the snapshot's cached copy and the cache's list of
	// index files, which a backup needs before its snapshot is saved; not
	// for the tree pack (about 500 KiB) and index file (about 200 KiB) of
	// 3000 directories, which the cache then leaves out, nor for their
	// stat records (about 400 KiB).
	const free = 128 << 10
	manyDirs(t, src, "d", 3000)
	fillLeaving(t, e.cache, free)
	r := e.run("backup", src)
	if r.code != exitPartial {
		t.Fatalf("backup with a full cache disk: exit %d, want %d\nstdout: %s\nstderr: %s", r.code, exitPartial, r.stdout, r.stderr)
	}
	m := regexp.MustCompile(`snapshot ([0-9a-f]{8}) saved, but recording it in the local state database (\S+) failed: write stat cache: database or disk is full.*; the next backup of these paths reads again what this one read`).
		FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("backup with a full cache disk says:\n%s", r.stderr)
	}
	if m[2] != db {
		t.Fatalf("message names state database %s, want %s", m[2], db)
	}
	sns := e.snapshots()
	if len(sns) != 2 || !strings.HasPrefix(sns[1].ID, m[1]) || sns[1].Totals.Files != 3010 {
		t.Fatalf("snapshots after the failed state write: %+v", sns)
	}
	e.mustRun("check")

	// A new backup set on the full disk: no stat records to fall back on.
	other := filepath.Join(e.dir, "other")
	manyDirs(t, other, "d", 3000)
	fillLeaving(t, e.cache, free)
	r = e.run("backup", other)
	if r.code != exitPartial || !strings.Contains(r.stderr, "failed: write stat cache: database or disk is full") ||
		!strings.Contains(r.stderr, "; the next backup of these paths reads every file") {
		t.Fatalf("first backup of a set with a full cache disk: exit %d\n%s", r.code, r.stderr)
	}

	// Before the snapshot: nothing written, and the message says so.
	r = e.run("backup", filepath.Join(e.dir, "does-not-exist"))
	if r.code != exitFailure || !strings.Contains(r.stderr, "no snapshot was written: ") {
		t.Fatalf("backup of a missing path: exit %d %s", r.code, r.stderr)
	}

	// With room again, the next backup of src reads again what the one
	// whose state write failed read: the state database still names the
	// first snapshot as the set's last, and holds its stat records.
	if err := os.Remove(filepath.Join(e.cache, "filler")); err != nil {
		t.Fatal(err)
	}
	var b struct {
		Parent  string
		Scan    struct{ Mode string }
		Summary struct {
			FilesNew uint64 `json:"files_new"`
		}
	}
	out := e.mustRun("backup", "--json", src).stdout
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if b.Parent != sns[0].ID || b.Scan.Mode != "parent-assisted" || b.Summary.FilesNew != 3000 {
		t.Fatalf("backup after the disk had room again: %+v", b)
	}
}
