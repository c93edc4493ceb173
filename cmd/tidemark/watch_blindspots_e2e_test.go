//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestJournalSharedMapping is defect 2: a process maps a file below the
// root MAP_SHARED and writable, writes through the mapping and keeps it,
// as databases do. Neither fanotify nor inotify reports such stores (the
// close-write comes when the mapping goes, maybe days later), so the
// backup looks for live shared writable mappings of files in its paths
// before it fences and lists their directories. Here the test process is
// the one holding the mapping; the backup, another process, finds it in
// /proc/PID/maps.
func TestJournalSharedMapping(t *testing.T) {
	watchSources(t, func(t *testing.T, watchArgs []string) {
		e := newEnv(t)
		src := filepath.Join(e.dir, "src")
		state := filepath.Join(e.dir, "state")
		for _, d := range []string{filepath.Join(src, "db"), filepath.Join(src, "other")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		db := filepath.Join(src, "db", "data.mdb")
		if err := os.WriteFile(db, make([]byte, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "other", "x"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		startWatch(t, state, append(watchArgs, src)...)
		e.mustRun("init")
		e.backupJSON("--state", state, src)
		e.quietBackup(state, src)

		f, err := os.OpenFile(db, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		f.Close() // the mapping keeps the file open: no close-write yet
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(mem)
		write := func(off int, s string) {
			copy(mem[off:], s)
			// As databases do: the written pages go to disk and are
			// write-protected again, so the next store faults and
			// updates the file's times.
			if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
				t.Fatal(err)
			}
		}
		write(0, "written through a shared mapping")

		b, tree := e.backupTree("--state", state, src)
		if b.Scan.Mode != "journal" {
			t.Fatalf("after a write through a mapping: %+v", b.Scan)
		}
		if full := e.readAllTree(state, src); tree != full {
			t.Fatalf("the journal backup missed the write through the mapping (%+v): tree %s, a full scan gives %s", b.Scan, tree, full)
		}
		// Written again through the same live mapping: seen again.
		e.quietBackup(state, src)
		write(100, "and again")
		b, tree = e.backupTree("--state", state, src)
		if full := e.readAllTree(state, src); b.Scan.Mode != "journal" || tree != full {
			t.Fatalf("second write (%+v): tree %s, a full scan gives %s", b.Scan, tree, full)
		}
	})
}

// readAllTree backs up src reading every file (--scan full --read-all)
// and returns the ID of src's tree: unlike a parent-assisted scan, it
// does not trust file times, so it sees content that changed unseen. It
// records another host, so that it is not the parent of the next backup:
// journal backups follow one another as they would without it.
func (e *env) readAllTree(state, src string) string {
	e.t.Helper()
	_, tree := e.backupTree("--state", state, "--scan", "full", "--read-all", "--host", "read-all", src)
	return tree
}

// bindMount binds src onto dst for the rest of the test, or skips the
// test, saying why, when mounting is refused (no CAP_SYS_ADMIN, or a
// container that forbids it).
func bindMount(t *testing.T, src, dst string) {
	t.Helper()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("mount --bind %s %s refused: %v", src, dst, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil && err != unix.EINVAL { // EINVAL: unmounted by the test
			t.Errorf("umount %s: %v", dst, err)
		}
	})
}

// TestJournalBindMount is defect 3: a bind mount inside the watched root
// shows a directory from outside it, and the directory is changed through
// its own path, outside the root. fanotify reports the change by handle,
// which resolves to the outside path; the watcher resolves it through
// every mount of the filesystem, so it is also recorded under the bind
// mount. The bound directory's own metadata, and a bind-mounted file, are
// changed the same way. inotify watches the directory itself (inode), so
// it sees the change whichever path made it.
func TestJournalBindMount(t *testing.T) {
	watchSources(t, func(t *testing.T, watchArgs []string) {
		e := newEnv(t)
		w := filepath.Join(e.dir, "W")
		bsrc := filepath.Join(e.dir, "B", "bindsrc")
		state := filepath.Join(e.dir, "state")
		for _, d := range []string{filepath.Join(w, "mnt"), filepath.Join(w, "d"), filepath.Join(bsrc, "sub")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for p, s := range map[string]string{
			filepath.Join(bsrc, "b"): "b", filepath.Join(bsrc, "sub", "s"): "s", filepath.Join(w, "d", "x"): "x",
			filepath.Join(w, "f"): "", filepath.Join(e.dir, "B", "file"): "file",
		} {
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		bindMount(t, bsrc, filepath.Join(w, "mnt"))
		bindMount(t, filepath.Join(e.dir, "B", "file"), filepath.Join(w, "f"))
		startWatch(t, state, append(watchArgs, w)...)
		e.mustRun("init")
		e.backupJSON("--state", state, w)
		e.quietBackup(state, w)

		check := func(what string) {
			t.Helper()
			b, tree := e.backupTree("--state", state, w)
			if full := e.readAllTree(state, w); b.Scan.Mode != "journal" || tree != full {
				t.Fatalf("%s (%+v): tree %s, a full scan gives %s", what, b.Scan, tree, full)
			}
			e.quietBackup(state, w)
		}
		if err := os.WriteFile(filepath.Join(bsrc, "b2"), []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
		appendFile(t, filepath.Join(bsrc, "b"), " changed")
		appendFile(t, filepath.Join(bsrc, "sub", "s"), " changed")
		check("after changes through the bind mount's source path")
		if err := os.Chmod(bsrc, 0o700); err != nil {
			t.Fatal(err)
		}
		check("after a chmod of the bound directory through its source path")
		appendFile(t, filepath.Join(e.dir, "B", "file"), " changed")
		check("after a write to a bind-mounted file through its source path")
	})
}

// TestJournalBindMountInsideRoot: a directory inside the root is also
// bound elsewhere inside it, so a change through one name changes what
// the other shows. fanotify resolves the change through both mounts.
// inotify has one watch per directory, which names one of the two: it says
// the other is not covered (the backup scans fully with that reason) until
// the bind mount goes.
func TestJournalBindMountInsideRoot(t *testing.T) {
	watchSources(t, func(t *testing.T, watchArgs []string) {
		e := newEnv(t)
		w := filepath.Join(e.dir, "W")
		state := filepath.Join(e.dir, "state")
		for _, d := range []string{filepath.Join(w, "a", "mnt"), filepath.Join(w, "src", "sub")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(w, "src", "sub", "f"), []byte("f"), 0o644); err != nil {
			t.Fatal(err)
		}
		bindMount(t, filepath.Join(w, "src"), filepath.Join(w, "a", "mnt"))
		startWatch(t, state, append(watchArgs, w)...)
		e.mustRun("init")
		e.backupJSON("--state", state, w)
		inotify := len(watchArgs) > 0
		if !inotify {
			e.quietBackup(state, w)
		}
		appendFile(t, filepath.Join(w, "src", "sub", "f"), " changed")
		if err := os.WriteFile(filepath.Join(w, "a", "mnt", "new"), []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
		b, tree := e.backupTree("--state", state, w)
		if full := e.readAllTree(state, w); tree != full {
			t.Fatalf("%+v: tree %s, a full scan gives %s", b.Scan, tree, full)
		}
		switch {
		case !inotify && b.Scan.Mode != "journal":
			t.Fatalf("fanotify: %+v", b.Scan)
		case inotify && b.Scan.Mode == "journal":
			t.Fatalf("inotify: %+v", b.Scan)
		case inotify:
			st := e.mustRun("journal", "status", "--state", state)
			if !strings.Contains(st.stdout, "(a bind mount): inotify reports its changes under one name") {
				t.Fatalf("journal status does not say why:\n%s", st.stdout)
			}
		}
		if !inotify {
			return
		}
		// Unmounted, the directory has one name again: covered once the
		// watcher's next check sees it (a heartbeat, or the fence).
		if err := unix.Unmount(filepath.Join(w, "a", "mnt"), unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
		e.backupJSON("--state", state, w) // its fence covers the roots again
		appendFile(t, filepath.Join(w, "src", "sub", "f"), " again")
		b, tree = e.backupTree("--state", state, w)
		if full := e.readAllTree(state, w); b.Scan.Mode != "journal" || tree != full {
			t.Fatalf("after the unmount (%+v): tree %s, a full scan gives %s", b.Scan, tree, full)
		}
	})
}
