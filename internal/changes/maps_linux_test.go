package changes

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// mapShared maps the file p MAP_SHARED and writable, writes through the
// mapping and keeps it until the test ends.
func mapShared(t *testing.T, p string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the mapping keeps the file
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	copy(mem, "written through the mapping")
}

// TestMappedChanges maps files in this process, as a database would, and
// checks that the search finds them: by directory when the name checks
// out, with the inode when the file has other links, under another name
// when the one it was mapped through is gone; a file outside the roots
// with one name, or with no name left, is none of their business.
func TestMappedChanges(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	out := filepath.Join(base, "out")
	for _, d := range []string{filepath.Join(root, "db"), filepath.Join(root, "links"), filepath.Join(root, "gone"), filepath.Join(root, "unlinked"), out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	page := make([]byte, 4096)
	files := map[string]string{
		"db":      filepath.Join(root, "db", "data.mdb"),
		"linked":  filepath.Join(root, "links", "a"),
		"removed": filepath.Join(root, "gone", "b"),
		"outside": filepath.Join(out, "c"),
		"gone":    filepath.Join(root, "unlinked", "u"),
	}
	for _, p := range files {
		if err := os.WriteFile(p, page, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(files["linked"], filepath.Join(out, "a2")); err != nil {
		t.Fatal(err)
	}
	// "removed" keeps a name in the root: mapped through a name that was
	// then deleted, the kernel calls it "(deleted)".
	if err := os.Link(files["removed"], filepath.Join(root, "gone", "b2")); err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		mapShared(t, p)
	}
	stat := func(p string) unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if err := os.Remove(files["removed"]); err != nil {
		t.Fatal(err)
	}
	unlinked := stat(files["gone"])
	if err := os.Remove(files["gone"]); err != nil {
		t.Fatal(err)
	}
	linked := stat(files["linked"])

	d, scan, err := mappedChanges([]string{root})
	if err != nil {
		t.Fatal(err)
	}
	if scan.Processes == 0 || scan.Files < 3 {
		t.Errorf("scan %+v", scan)
	}
	for _, dir := range []string{filepath.Join(root, "db"), filepath.Join(root, "links")} {
		if !slices.Contains(d.Dirs, dir) {
			t.Errorf("%s not listed: %+v", dir, d)
		}
	}
	if slices.Contains(d.Dirs, out) {
		t.Errorf("a directory outside the roots listed: %+v", d)
	}
	if !slices.Contains(d.Inodes, Inode{Path: files["linked"], Dev: linked.Dev, Ino: linked.Ino}) {
		t.Errorf("the hard-linked mapped file is not listed by inode: %+v", d.Inodes)
	}
	// Mapped through a removed name, the file is found by its handle
	// under its other name.
	if !slices.Contains(d.Dirs, filepath.Join(root, "gone")) {
		t.Errorf("the file mapped through a removed name is not found under its other name: %+v", d)
	}
	// A file mapped whose every name was removed is in no backup.
	if slices.Contains(d.Dirs, filepath.Join(root, "unlinked")) {
		t.Errorf("a file with no name left listed: %+v", d)
	}
	for _, in := range d.Inodes {
		if in.Ino == unlinked.Ino {
			t.Errorf("a file with no name left listed by number: %+v", in)
		}
	}
}
