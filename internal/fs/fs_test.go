package fs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// These tests run on every platform (on Windows under wine too). Fixtures
// are made with package os; what is checked is this package.

func tempDir(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		// t.TempDir's cleanup (os.RemoveAll) fails under wine 8, whose
		// NtSetInformationFile lacks FileDispositionInformationEx; a
		// directory left behind there is no failure of this package.
		d, err := os.MkdirTemp("", "fstest")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.RemoveAll(d); err != nil {
				t.Logf("cleanup: %v", err)
			}
		})
		return d
	}
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func openDir(t *testing.T, p string) *Dir {
	t.Helper()
	d, err := OpenDir(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// symlink makes a symlink or skips the test where that cannot be done:
// Windows without the privilege or Developer Mode, and wine 8, whose
// CreateSymbolicLinkW reports success and creates nothing.
func symlink(t *testing.T, target, link string) {
	t.Helper()
	err := os.Symlink(target, link)
	if err == nil && runtime.GOOS == "windows" {
		if _, err = os.Lstat(link); err != nil {
			err = fmt.Errorf("os.Symlink succeeded, but there is no symlink: %w", err)
		}
	}
	if err != nil {
		if runtime.GOOS == "windows" {
			t.Skipf("cannot create symlinks here: %v", err)
		}
		t.Fatal(err)
	}
}

func TestNamesSorted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
	}{
		{"empty", nil},
		// No two names differ only in case: Windows filesystems would take
		// them for one.
		{"bytewise order", []string{"b", "a", "C", "aa", "a.txt", "z", "ä", "~", "0", "Ö"}},
		{"many", manyNames(3000)}, // more than one 64 KiB getdents buffer
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tempDir(t)
			for _, n := range tc.files {
				must(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
			}
			got, err := openDir(t, dir).Names()
			must(t, err)
			want := slices.Clone(tc.files)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("Names() = %q, want %q", got, want)
			}
		})
	}
}

func manyNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, strings.Repeat("n", 20)+string(rune('a'+i%26))+strings.Repeat("x", i%7)+"-"+itoa(i))
	}
	return out
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestLstatPortable(t *testing.T) {
	dir := tempDir(t)
	must(t, os.WriteFile(filepath.Join(dir, "file"), []byte("twelve bytes"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "dir"), 0o755))
	must(t, os.Link(filepath.Join(dir, "file"), filepath.Join(dir, "link2")))
	d := openDir(t, dir)

	for _, tc := range []struct {
		name  string
		check func(Stat) bool
		size  int64
		nlink uint64
	}{
		{"file", Stat.IsRegular, 12, 2},
		{"link2", Stat.IsRegular, 12, 2},
		{"dir", Stat.IsDir, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := d.Lstat(tc.name)
			must(t, err)
			if !tc.check(st) {
				t.Errorf("mode %#o", st.Mode)
			}
			if tc.size >= 0 && st.Size != tc.size {
				t.Errorf("size %d, want %d", st.Size, tc.size)
			}
			if tc.nlink != 0 && st.Nlink != tc.nlink {
				t.Errorf("nlink %d, want %d", st.Nlink, tc.nlink)
			}
			fi, err := os.Lstat(filepath.Join(dir, tc.name))
			must(t, err)
			if st.MTime != fi.ModTime().UnixNano() {
				t.Errorf("mtime %d, os says %d", st.MTime, fi.ModTime().UnixNano())
			}
			if st.CTime == 0 || st.Ino == 0 {
				t.Errorf("no ctime or inode: %+v", st)
			}
			byPath, err := Lstat(filepath.Join(dir, tc.name))
			must(t, err)
			if byPath != st {
				t.Errorf("Lstat(path) = %+v, Dir.Lstat = %+v", byPath, st)
			}
		})
	}
	a, _ := d.Lstat("file")
	b, _ := d.Lstat("link2")
	c, _ := d.Lstat("dir")
	if a.Ino != b.Ino || a.Dev != b.Dev {
		t.Errorf("hard links differ in identity: %+v %+v", a, b)
	}
	if a.Ino == c.Ino || a.Dev != c.Dev {
		t.Errorf("file and directory: %+v %+v", a, c)
	}
	self, err := d.Stat()
	must(t, err)
	if !self.IsDir() {
		t.Errorf("Dir.Stat mode %#o", self.Mode)
	}
	if _, err := d.Lstat("missing"); !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Lstat of a missing entry: %v", err)
	}
}

func TestSymlinksNotFollowed(t *testing.T) {
	dir := tempDir(t)
	outside := tempDir(t)
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "real"), 0o755))
	symlink(t, outside, filepath.Join(dir, "dirlink"))
	symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, "filelink"))
	d := openDir(t, dir)

	for _, name := range []string{"dirlink", "filelink"} {
		st, err := d.Lstat(name)
		must(t, err)
		if !st.IsSymlink() {
			t.Errorf("Lstat(%s) mode %#o, want a symlink", name, st.Mode)
		}
	}
	if sub, err := d.OpenDir("dirlink"); err == nil {
		sub.Close()
		t.Error("Dir.OpenDir followed a symlink")
	}
	if sub, err := OpenDir(filepath.Join(dir, "dirlink")); err == nil {
		sub.Close()
		t.Error("OpenDir followed a symlink as the last component")
	}
	if f, err := d.OpenFile("filelink"); err == nil {
		f.Close()
		t.Error("OpenFile followed a symlink")
	}
	if p, err := d.OpenDirPath("dirlink"); err == nil {
		p.Close()
		t.Error("OpenDirPath followed a symlink")
	}
	// Following is explicit.
	fd, err := OpenDirFollow(filepath.Join(dir, "dirlink"))
	must(t, err)
	names, err := fd.Names()
	must(t, err)
	fd.Close()
	if !slices.Equal(names, []string{"secret"}) {
		t.Errorf("OpenDirFollow listed %q", names)
	}
	sub, err := d.OpenDir("real")
	must(t, err)
	sub.Close()

	target, err := d.Readlink("filelink")
	must(t, err)
	if target != filepath.Join(outside, "secret") {
		t.Errorf("Readlink = %q", target)
	}
	symlink(t, "rel/target", filepath.Join(dir, "rel"))
	if target, err := d.Readlink("rel"); err != nil || target != filepath.FromSlash("rel/target") {
		t.Errorf("Readlink(rel) = %q, %v", target, err)
	}
}

func TestOpenFileRead(t *testing.T) {
	dir := tempDir(t)
	data := bytes.Repeat([]byte("tidemark "), 100000)
	must(t, os.WriteFile(filepath.Join(dir, "f"), data, 0o644))
	d := openDir(t, dir)
	f, err := d.OpenFile("f")
	must(t, err)
	defer f.Close()
	got, err := io.ReadAll(f)
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Errorf("read %d bytes, want %d", len(got), len(data))
	}
	st, err := f.Stat()
	must(t, err)
	lst, err := d.Lstat("f")
	must(t, err)
	if st != lst || !st.IsRegular() || st.Size != int64(len(data)) {
		t.Errorf("File.Stat %+v, Lstat %+v", st, lst)
	}
	if _, err := d.OpenFile("missing"); !errors.Is(err, ErrNotExist) {
		t.Errorf("OpenFile of a missing file: %v", err)
	}
}

// TestCreate covers the restore side: creating each kind of entry, never
// over an existing one, and setting metadata.
func TestCreate(t *testing.T) {
	dir := tempDir(t)
	d := openDir(t, dir)

	must(t, d.Mkdir("sub", 0o755))
	f, err := d.CreateFile("file", 0o600)
	must(t, err)
	// Chunks at offsets, a gap left for a hole, and the size set last.
	_, err = f.WriteAt([]byte("head"), 0)
	must(t, err)
	_, err = f.WriteAt([]byte("tail"), 1<<20)
	must(t, err)
	must(t, f.Truncate(1<<20+10))
	st, err := f.Stat()
	must(t, err)
	if st.Size != 1<<20+10 {
		t.Errorf("size %d", st.Size)
	}
	must(t, f.Chmod(0o444))
	must(t, f.Close())
	b, err := os.ReadFile(filepath.Join(dir, "file"))
	must(t, err)
	if len(b) != 1<<20+10 || string(b[:4]) != "head" || string(b[1<<20:1<<20+4]) != "tail" || b[5] != 0 || b[1<<20+5] != 0 {
		t.Errorf("content wrong (%d bytes)", len(b))
	}

	mtime := time.Date(2021, 3, 4, 5, 6, 7, 123456700, time.UTC).UnixNano() // 100 ns steps, as NTFS keeps them
	must(t, d.SetMtime("file", mtime))
	must(t, d.SetMtime("sub", mtime))
	for _, name := range []string{"file", "sub"} {
		st, err := d.Lstat(name)
		must(t, err)
		if st.MTime != mtime {
			t.Errorf("%s: mtime %d, want %d", name, st.MTime, mtime)
		}
	}
	if st, _ := d.Lstat("file"); st.Mode&0o777 != 0o444 {
		t.Errorf("mode %#o after Chmod(0o444)", st.Mode)
	}
	must(t, d.Lchmod("file", 0o644))
	if st, _ := d.Lstat("file"); st.Mode&0o200 == 0 {
		t.Errorf("mode %#o after Lchmod(0o644)", st.Mode)
	}

	// Hard links, across directories.
	sub, err := d.OpenDir("sub")
	must(t, err)
	defer sub.Close()
	must(t, Link(d, "file", sub, "hard"))
	a, _ := d.Lstat("file")
	h, err := sub.Lstat("hard")
	must(t, err)
	if a.Ino != h.Ino || a.Dev != h.Dev || h.Nlink != 2 {
		t.Errorf("link: %+v vs %+v", a, h)
	}
	p, err := d.OpenDirPath("sub")
	must(t, err)
	if st, err := p.Lstat("hard"); err != nil || st.Ino != a.Ino {
		t.Errorf("Lstat through OpenDirPath: %+v, %v", st, err)
	}
	p.Close()

	// Nothing is created over an existing entry.
	for _, tc := range []struct {
		name string
		fn   func() error
	}{
		{"Mkdir over a file", func() error { return d.Mkdir("file", 0o755) }},
		{"Mkdir over a directory", func() error { return d.Mkdir("sub", 0o755) }},
		{"CreateFile over a file", func() error {
			f, err := d.CreateFile("file", 0o600)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"CreateFile over a directory", func() error {
			f, err := d.CreateFile("sub", 0o600)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"Link over a file", func() error { return Link(d, "file", sub, "hard") }},
	} {
		if err := tc.fn(); !errors.Is(err, ErrExist) {
			t.Errorf("%s: %v, want an error matching ErrExist", tc.name, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "file")); len(b) != 1<<20+10 {
		t.Error("existing file changed")
	}

	// Remove takes files, never directories.
	must(t, sub.Remove("hard"))
	if _, err := sub.Lstat("hard"); !errors.Is(err, ErrNotExist) {
		t.Errorf("removed entry still there: %v", err)
	}
	must(t, d.Lchmod("file", 0o444))
	must(t, d.Remove("file")) // read-only files go too, as on Unix
	if err := d.Remove("sub"); err == nil {
		t.Error("Remove removed a directory")
	}
}

func TestSymlinkCreate(t *testing.T) {
	dir := tempDir(t)
	d := openDir(t, dir)
	symlink(t, "probe", filepath.Join(dir, "probe")) // skips where symlinks need a privilege
	must(t, d.Symlink("some/target", "link"))
	st, err := d.Lstat("link")
	must(t, err)
	if !st.IsSymlink() {
		t.Errorf("mode %#o", st.Mode)
	}
	target, err := d.Readlink("link")
	must(t, err)
	if target != filepath.FromSlash("some/target") {
		t.Errorf("target %q", target)
	}
	if err := d.Symlink("other", "link"); !errors.Is(err, ErrExist) {
		t.Errorf("Symlink over a symlink: %v", err)
	}
	must(t, d.Remove("link"))
}

// TestLongPath goes deeper than the platform's path-based calls reach
// (PATH_MAX is 4096 on Linux, 1024 on macOS; Windows without \\?\ has 260
// characters), which only works relative to open directories.
func TestLongPath(t *testing.T) {
	length := 5000
	if runtime.GOOS == "windows" {
		// Far beyond Windows' 260, but below the Unix PATH_MAX, which wine
		// (mapping to Unix paths) cannot exceed for handles opened for
		// attributes only.
		length = 3000
	}
	top := tempDir(t)
	d := openDir(t, top)
	cur := d
	var rel []string
	for i := 0; len(strings.Join(rel, "/")) <= length; i++ {
		name := strings.Repeat(string(rune('a'+i%26)), 200)
		must(t, cur.Mkdir(name, 0o755))
		next, err := cur.OpenDir(name)
		must(t, err)
		if cur != d {
			cur.Close()
		}
		cur = next
		rel = append(rel, name)
	}
	defer cur.Close()
	f, err := cur.CreateFile("deep.txt", 0o644)
	must(t, err)
	_, err = f.WriteAt([]byte("deep"), 0)
	must(t, err)
	must(t, f.Close())
	names, err := cur.Names()
	must(t, err)
	if !slices.Equal(names, []string{"deep.txt"}) {
		t.Errorf("names %q", names)
	}
	p, err := d.OpenDirPath(strings.Join(rel, "/"))
	must(t, err)
	defer p.Close()
	st, err := p.Lstat("deep.txt")
	must(t, err)
	if st.Size != 4 {
		t.Errorf("size %d", st.Size)
	}
	r, err := cur.OpenFile("deep.txt")
	must(t, err)
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "deep" {
		t.Errorf("read %q, %v", b, err)
	}
}

func TestErrors(t *testing.T) {
	dir := tempDir(t)
	d := openDir(t, dir)
	_, err := d.Lstat("nope")
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("%v", err)
	}
	want := "lstat " + filepath.Join(dir, "nope") + ": "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	wrapped := errors.Join(errors.New("first"), err)
	if got := ErrorText(wrapped); strings.Contains(got, dir) || !strings.Contains(got, "lstat: ") {
		t.Errorf("ErrorText = %q", got)
	}
	ns := notSupported("create fifo", "/x/y")
	if !errors.Is(ns, ErrNotSupported) || !errors.Is(ns, errors.ErrUnsupported) ||
		ns.Error() != "create fifo /x/y: not supported on this platform ("+runtime.GOOS+")" {
		t.Errorf("notSupported: %v", ns)
	}
}

// TestPlatformLimits checks that what a platform cannot do fails with
// ErrNotSupported instead of pretending.
func TestPlatformLimits(t *testing.T) {
	dir := tempDir(t)
	must(t, os.WriteFile(filepath.Join(dir, "f"), nil, 0o644))
	d := openDir(t, dir)
	type op struct {
		name string
		fn   func() error
	}
	var unsupported []op
	switch runtime.GOOS {
	case "windows":
		unsupported = []op{
			{"Mknod fifo", func() error { return d.Mknod("fifo", TypeFifo|0o644, 0) }},
			{"Mknod socket", func() error { return d.Mknod("sock", TypeSocket|0o644, 0) }},
			{"Lchown", func() error { return d.Lchown("f", 0, 0) }},
			{"Chown", func() error { return d.Chown(0, 0) }},
			{"Lsetxattr", func() error { return d.Lsetxattr("f", Xattr{Name: "user.x", Value: []byte("v")}) }},
			{"SetXattr", func() error { return d.SetXattr(Xattr{Name: "user.x"}) }},
		}
		if xs, err := d.Xattrs("f"); xs != nil || err != nil {
			t.Errorf("Xattrs on Windows: %v, %v; want none", xs, err)
		}
	case "darwin":
		unsupported = []op{
			{"Mknod fifo", func() error { return d.Mknod("fifo", TypeFifo|0o644, 0) }},
		}
	default:
		t.Skip("everything is supported on " + runtime.GOOS)
	}
	for _, o := range unsupported {
		err := o.fn()
		if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: %v, want ErrNotSupported naming the path", o.name, err)
		}
	}
	if names, _ := d.Names(); !slices.Equal(names, []string{"f"}) {
		t.Errorf("something was created: %q", names)
	}
}

// TestOpenDirRelative: a relative path is taken from the working
// directory (a restore target is often given so).
func TestOpenDirRelative(t *testing.T) {
	dir := tempDir(t)
	must(t, os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	t.Chdir(dir)
	for i, open := range []func(string) (*Dir, error){OpenDir, OpenDirFollow} {
		d, err := open(filepath.Join("a", "b"))
		must(t, err)
		name := "c" + itoa(i)
		must(t, d.Mkdir(name, 0o755))
		d.Close()
		if _, err := os.Stat(filepath.Join(dir, "a", "b", name)); err != nil {
			t.Error(err)
		}
	}
	if _, err := Lstat("a"); err != nil {
		t.Error(err)
	}
}
