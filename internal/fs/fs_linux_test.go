package fs

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLstatEveryType compares Lstat with the kernel's own stat for every
// kind of entry.
func TestLstatEveryType(t *testing.T) {
	dir := tempDir(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name     string
		make     func() error
		typ      uint32
		rootOnly bool
	}{
		{"regular", func() error { return os.WriteFile(p("regular"), []byte("abc"), 0o640) }, TypeRegular, false},
		{"dir", func() error { return os.Mkdir(p("dir"), 0o750) }, TypeDir, false},
		{"symlink", func() error { return os.Symlink("dir", p("symlink")) }, TypeSymlink, false},
		{"fifo", func() error { return unix.Mkfifo(p("fifo"), 0o600) }, TypeFifo, false},
		{"socket", func() error { return unix.Mknod(p("socket"), unix.S_IFSOCK|0o755, 0) }, TypeSocket, false},
		{"chardev", func() error { return unix.Mknod(p("chardev"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))) }, TypeCharDev, true},
		{"blockdev", func() error { return unix.Mknod(p("blockdev"), unix.S_IFBLK|0o644, int(unix.Mkdev(7, 200))) }, TypeBlockDev, true},
		{"setuid", func() error {
			if err := os.WriteFile(p("setuid"), nil, 0o755); err != nil {
				return err
			}
			return unix.Chmod(p("setuid"), 0o4755)
		}, TypeRegular, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly && !root {
				t.Skip("needs root")
			}
			if err := tc.make(); err != nil {
				if tc.rootOnly && errors.Is(err, unix.EPERM) {
					t.Skipf("cannot make devices here: %v", err)
				}
				t.Fatal(err)
			}
			d := openDir(t, dir)
			st, err := d.Lstat(tc.name)
			must(t, err)
			var want unix.Stat_t
			must(t, unix.Lstat(p(tc.name), &want))
			if st != fromUnix(&want) {
				t.Errorf("Lstat %+v, kernel %+v", st, want)
			}
			if st.Type() != tc.typ || st.Mode != want.Mode {
				t.Errorf("mode %#o, want type %#o (kernel mode %#o)", st.Mode, tc.typ, want.Mode)
			}
			if tc.typ == TypeCharDev && st.Rdev != unix.Mkdev(1, 3) {
				t.Errorf("rdev %#x", st.Rdev)
			}
		})
	}
}

// TestOpenFileFifoDoesNotBlock: a fifo swapped in for a file must not hang
// the reader; the caller sees it is not a regular file.
func TestOpenFileFifoDoesNotBlock(t *testing.T) {
	dir := tempDir(t)
	must(t, unix.Mkfifo(filepath.Join(dir, "f"), 0o600))
	d := openDir(t, dir)
	done := make(chan error, 1)
	go func() {
		f, err := d.OpenFile("f")
		if err == nil {
			var st Stat
			if st, err = f.Stat(); err == nil && st.Type() != TypeFifo {
				err = errors.New("not reported as a fifo")
			}
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("OpenFile blocked on a fifo")
	}
}

func openFlags(t *testing.T, f *File) int {
	t.Helper()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	must(t, err)
	return fl
}

// TestOpenFileNoatime: O_NOATIME is used on files we own and dropped on
// EPERM for others' files, rather than failing.
func TestOpenFileNoatime(t *testing.T) {
	dir := tempDir(t)
	must(t, os.WriteFile(filepath.Join(dir, "mine"), []byte("x"), 0o644))
	must(t, os.Chmod(dir, 0o755))
	d := openDir(t, dir)

	f, err := d.OpenFile("mine")
	must(t, err)
	if openFlags(t, f)&unix.O_NOATIME == 0 {
		t.Error("own file opened without O_NOATIME")
	}
	f.Close()

	// Someone else's file: as root, become someone else for this thread
	// only (the filesystem uid, which also drops CAP_FOWNER); otherwise use
	// a file of another user if there is one.
	if os.Geteuid() == 0 {
		runtime.LockOSThread()
		prev, _ := unix.SetfsuidRetUid(65534)
		f, err = d.OpenFile("mine")
		unix.SetfsuidRetUid(prev)
		// setfsuid(-1) changes nothing and returns the current value. Should
		// the thread not be back to normal, it stays locked and dies with
		// this goroutine.
		if cur, _ := unix.SetfsuidRetUid(-1); cur == prev {
			runtime.UnlockOSThread()
		}
	} else {
		var st unix.Stat_t
		if unix.Stat("/etc/passwd", &st) != nil || int(st.Uid) == os.Geteuid() {
			t.Skip("no file of another user to open")
		}
		etc := openDir(t, "/etc")
		f, err = etc.OpenFile("passwd")
	}
	must(t, err)
	if openFlags(t, f)&unix.O_NOATIME != 0 {
		t.Error("another user's file opened with O_NOATIME")
	}
	f.Close()
}

func TestXattrs(t *testing.T) {
	dir := tempDir(t)
	p := filepath.Join(dir, "f")
	must(t, os.WriteFile(p, nil, 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	switch err := unix.Lsetxattr(p, "user.b", []byte("second"), 0); {
	case errors.Is(err, unix.ENOTSUP):
		t.Skip("no user xattrs on this filesystem")
	case err != nil:
		t.Fatal(err)
	}
	must(t, unix.Lsetxattr(p, "user.a", []byte{0, 1, 0xff}, 0))
	d := openDir(t, dir)
	xs, err := d.Xattrs("f")
	must(t, err)
	want := []Xattr{{"user.a", []byte{0, 1, 0xff}}, {"user.b", []byte("second")}}
	if !xattrsEqual(xs, want) {
		t.Errorf("Xattrs = %q, want %q", xs, want)
	}
	if xs, err := d.Xattrs("sub"); err != nil || xs != nil {
		t.Errorf("Xattrs of a plain directory: %q, %v", xs, err)
	}

	// Setting: by name, through an open file and through the directory.
	big := make([]byte, 3000) // beyond the first read buffer
	must(t, d.Lsetxattr("f", Xattr{"user.c", big}))
	f, err := d.OpenFile("f")
	must(t, err)
	must(t, f.SetXattr(Xattr{"user.d", []byte("via fd")}))
	f.Close()
	sub, err := d.OpenDir("sub")
	must(t, err)
	must(t, sub.SetXattr(Xattr{"user.e", []byte("dir")}))
	sub.Close()
	xs, err = d.Xattrs("f")
	must(t, err)
	want = append(want, Xattr{"user.c", big}, Xattr{"user.d", []byte("via fd")})
	if !xattrsEqual(xs, want) {
		t.Errorf("after setting: %d xattrs %q", len(xs), names(xs))
	}
	if xs, err := d.Xattrs("sub"); err != nil || !xattrsEqual(xs, []Xattr{{"user.e", []byte("dir")}}) {
		t.Errorf("directory xattrs %q, %v", xs, err)
	}
}

func names(xs []Xattr) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.Name)
	}
	return out
}

func xattrsEqual(a, b []Xattr) bool {
	return slices.EqualFunc(a, b, func(x, y Xattr) bool { return x.Name == y.Name && string(x.Value) == string(y.Value) })
}

// TestRefusesPlantedSymlink: a symlink planted where a restore creates or
// changes an entry is never followed; what it points to stays untouched.
func TestRefusesPlantedSymlink(t *testing.T) {
	outside := tempDir(t)
	victim := filepath.Join(outside, "victim")
	must(t, os.WriteFile(victim, []byte("victim"), 0o644))
	must(t, os.Mkdir(filepath.Join(outside, "vdir"), 0o755))
	old := time.Unix(1_000_000_000, 0)
	must(t, os.Chtimes(victim, old, old))
	var before unix.Stat_t
	must(t, unix.Stat(victim, &before))

	for _, tc := range []struct {
		name   string
		target string
		op     func(d *Dir) error
		ok     bool // the operation succeeds, on the link itself
	}{
		{"CreateFile", victim, func(d *Dir) error {
			f, err := d.CreateFile("x", 0o644)
			if err == nil {
				f.Close()
			}
			return err
		}, false},
		{"Mkdir", filepath.Join(outside, "vdir"), func(d *Dir) error { return d.Mkdir("x", 0o755) }, false},
		{"Mknod", victim, func(d *Dir) error { return d.Mknod("x", TypeFifo|0o644, 0) }, false},
		{"Symlink", victim, func(d *Dir) error { return d.Symlink("elsewhere", "x") }, false},
		{"Link onto", victim, func(d *Dir) error {
			if err := os.WriteFile(filepath.Join(d.Path(), "src"), nil, 0o644); err != nil {
				return err
			}
			return Link(d, "src", d, "x")
		}, false},
		{"OpenDir", filepath.Join(outside, "vdir"), func(d *Dir) error {
			s, err := d.OpenDir("x")
			if err == nil {
				s.Close()
			}
			return err
		}, false},
		{"OpenFile", victim, func(d *Dir) error {
			f, err := d.OpenFile("x")
			if err == nil {
				f.Close()
			}
			return err
		}, false},
		{"Lchmod", victim, func(d *Dir) error { return d.Lchmod("x", 0o777) }, false},
		{"Lsetxattr", victim, func(d *Dir) error { return d.Lsetxattr("x", Xattr{"user.x", []byte("v")}) }, false},
		{"SetMtime", victim, func(d *Dir) error { return d.SetMtime("x", time.Now().UnixNano()) }, true},
		{"Lchown", victim, func(d *Dir) error {
			st, err := d.Lstat("x")
			if err != nil {
				return err
			}
			return d.Lchown("x", st.UID, st.GID)
		}, true},
		{"Remove", victim, func(d *Dir) error { return d.Remove("x") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tempDir(t)
			must(t, os.Symlink(tc.target, filepath.Join(dir, "x")))
			d := openDir(t, dir)
			err := tc.op(d)
			if tc.ok && err != nil {
				t.Errorf("on the link itself: %v", err)
			}
			if !tc.ok && err == nil {
				t.Error("succeeded through a planted symlink")
			}
			var after unix.Stat_t
			must(t, unix.Stat(victim, &after))
			if after.Mode != before.Mode || after.Mtim != before.Mtim || after.Size != before.Size || after.Nlink != before.Nlink {
				t.Errorf("victim changed: %+v -> %+v", before, after)
			}
			if b, _ := os.ReadFile(victim); string(b) != "victim" {
				t.Errorf("victim content %q", b)
			}
			if sz, _ := unix.Listxattr(victim, nil); sz != 0 {
				t.Error("victim got xattrs")
			}
			if ents, _ := os.ReadDir(filepath.Join(outside, "vdir")); len(ents) != 0 {
				t.Errorf("victim directory changed: %v", ents)
			}
		})
	}
}

// TestMknod creates each kind of special file.
func TestMknod(t *testing.T) {
	dir := tempDir(t)
	d := openDir(t, dir)
	for _, tc := range []struct {
		name     string
		mode     uint32
		rdev     uint64
		rootOnly bool
	}{
		{"fifo", TypeFifo | 0o640, 0, false},
		{"socket", TypeSocket | 0o600, 0, false},
		{"null", TypeCharDev | 0o666, unix.Mkdev(1, 3), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			if err := d.Mknod(tc.name, tc.mode, tc.rdev); err != nil {
				if tc.rootOnly && errors.Is(err, ErrPermission) {
					t.Skipf("cannot make devices here: %v", err)
				}
				t.Fatal(err)
			}
			st, err := d.Lstat(tc.name)
			must(t, err)
			if st.Type() != tc.mode&TypeMask || st.Rdev != tc.rdev {
				t.Errorf("mode %#o rdev %#x", st.Mode, st.Rdev)
			}
			if err := d.Mknod(tc.name, tc.mode, tc.rdev); !errors.Is(err, ErrExist) {
				t.Errorf("second Mknod: %v", err)
			}
		})
	}
}

// TestOpenDirPathWithoutReadPermission: the directory a hard link's first
// copy sits in may already have its final mode, unreadable to us; an
// O_PATH descriptor still reaches into it.
func TestOpenDirPathWithoutReadPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory")
	}
	dir := tempDir(t)
	must(t, os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "a", "b", "f"), nil, 0o644))
	must(t, os.Chmod(filepath.Join(dir, "a", "b"), 0o311)) // search, no read
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "a", "b"), 0o755) })
	d := openDir(t, dir)
	p, err := d.OpenDirPath("a/b")
	must(t, err)
	defer p.Close()
	if _, err := p.Lstat("f"); err != nil {
		t.Error(err)
	}
}
