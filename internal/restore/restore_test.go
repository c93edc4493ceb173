//go:build linux

// The restore tests build their source trees with Linux system calls
// (mknod, xattrs, paths beyond PATH_MAX) and compare full stat results.

package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
	"golang.org/x/sys/unix"
)

var password = []byte("restore test password")

// dirFlags open a directory the way package fs does, for the tests' own
// descriptor walks.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

func repoOptions() repo.Options {
	return repo.Options{KDF: func() (crypto.KDFParams, error) {
		p, err := crypto.DefaultKDFParams()
		p.Time, p.Memory = 1, 8*1024
		return p, err
	}}
}

func newRepo(t *testing.T) (*repo.Repository, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, password, repoOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// reopen opens a fresh handle, so nothing read earlier is cached.
func reopen(t *testing.T, dir string) *repo.Repository {
	t.Helper()
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), be, password, repoOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func backup(t *testing.T, r *repo.Repository, src string) blob.ID {
	t.Helper()
	ctx := context.Background()
	res, err := archive.Run(ctx, r, archive.Options{Roots: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Errors {
		t.Fatalf("archive: %s: %s", e.Path, e.Err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return res.Tree
}

// tempDir is t.TempDir with symlinks resolved, since backup roots are
// stored as they are spelled.
func tempDir(t *testing.T) string {
	t.Helper()
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

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, data, 0o644))
}

// source describes what buildSource made.
type source struct {
	dir      string
	xattrs   bool // user xattrs were set
	device   bool // a device node was made
	longPath string
}

const sparseSize = 48 << 20

// buildSource makes a tree with every kind of entry a restore must handle.
func buildSource(t *testing.T) source {
	t.Helper()
	src := source{dir: filepath.Join(tempDir(t), "src")}
	root := os.Geteuid() == 0
	p := func(rel string) string { return filepath.Join(src.dir, rel) }

	writeFile(t, p("empty"), nil)
	writeFile(t, p("small.txt"), []byte("hello, tidemark\n"))
	writeFile(t, p("dir/big.bin"), gentree.RandomBytes(5<<20+12345, 1))
	writeFile(t, p("dir/sub/deeper/file.txt"), []byte("deep"))
	writeFile(t, p("bad\xff\xfename"), []byte("not UTF-8"))
	if root {
		writeFile(t, p("noaccess"), []byte("mode 0"))
	}

	f, err := os.Create(p("sparse.img"))
	must(t, err)
	must(t, f.Truncate(sparseSize))
	_, err = f.WriteAt(gentree.RandomBytes(100000, 2), 0)
	must(t, err)
	_, err = f.WriteAt(gentree.RandomBytes(5000, 3), sparseSize-5000)
	must(t, err)
	must(t, f.Close())

	writeFile(t, p("ro/a.txt"), []byte("in a read-only dir"))
	writeFile(t, p("ro/b.txt"), gentree.RandomBytes(3000, 4))
	writeFile(t, p("setuid"), []byte("#!/bin/sh\n"))
	must(t, os.MkdirAll(p("sgid"), 0o755))
	must(t, os.MkdirAll(p("sticky"), 0o755))

	// Hard links: a pair in one directory, a triple across three.
	writeFile(t, p("hl/a"), gentree.RandomBytes(70000, 5))
	must(t, os.Link(p("hl/a"), p("hl/b")))
	writeFile(t, p("hl/three"), []byte("three links"))
	writeFile(t, p("other/x"), nil)
	must(t, os.Link(p("hl/three"), p("other/three-2")))
	must(t, os.Link(p("hl/three"), p("dir/sub/three-3")))

	must(t, os.Symlink("small.txt", p("link-file")))
	must(t, os.Symlink("does/not/exist", p("link-dangling")))
	must(t, os.Symlink("..", p("link-up")))
	must(t, os.Symlink("dir", p("link-dir")))
	must(t, os.Symlink("/etc/passwd", p("dir/link-abs")))

	must(t, unix.Mkfifo(p("fifo"), 0o640))
	must(t, unix.Mknod(p("socket"), unix.S_IFSOCK|0o755, 0))
	if root {
		if err := unix.Mknod(p("null-dev"), unix.S_IFCHR|0o640, int(unix.Mkdev(1, 3))); err == nil {
			src.device = true
		}
		must(t, os.Lchown(p("small.txt"), 1234, 5678))
		must(t, os.Lchown(p("link-file"), 4321, 8765))
		must(t, os.Lchown(p("dir/sub"), 1000, 1000))
	}

	// A path longer than PATH_MAX, which only *at calls can reach.
	longName := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 200) }
	fd, err := unix.Open(src.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	long := []string{}
	for i := range 22 {
		must(t, unix.Mkdirat(fd, longName(i), 0o755))
		next, err := unix.Openat(fd, longName(i), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		must(t, err)
		unix.Close(fd)
		fd = next
		long = append(long, longName(i))
	}
	ffd, err := unix.Openat(fd, "deep.txt", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
	must(t, err)
	_, err = unix.Write(ffd, []byte("beyond PATH_MAX"))
	must(t, err)
	unix.Close(ffd)
	unix.Close(fd)
	src.longPath = strings.Join(append(long, "deep.txt"), "/")
	if len(src.dir)+len(src.longPath) <= unix.PathMax {
		t.Fatalf("long path is only %d bytes", len(src.dir)+len(src.longPath))
	}

	switch err := unix.Lsetxattr(p("small.txt"), "user.comment", []byte("a comment"), 0); {
	case errors.Is(err, unix.ENOTSUP):
		t.Log("filesystem has no user xattrs; not testing them")
	case err != nil:
		t.Fatal(err)
	default:
		src.xattrs = true
		must(t, unix.Lsetxattr(p("small.txt"), "user.binary", []byte{0, 1, 2, 0xff}, 0))
		must(t, unix.Lsetxattr(p("dir"), "user.dir", []byte("on a directory"), 0))
		must(t, unix.Lsetxattr(p("hl/a"), "user.linked", []byte("shared by links"), 0))
	}

	must(t, unix.Chmod(p("setuid"), 0o4755))
	must(t, unix.Chmod(p("sgid"), 0o2775))
	must(t, unix.Chmod(p("sticky"), 0o1777))
	if root {
		must(t, unix.Chmod(p("noaccess"), 0))
	}
	must(t, unix.Chmod(p("ro"), 0o555))
	removable(t, src.dir)

	// Odd nanosecond mtimes, children before their directory.
	sd, err := fs.OpenDir(src.dir)
	must(t, err)
	defer sd.Close()
	i := int64(0)
	walkAt(t, sd, "", func(dirfd int, name, _ string, _ *unix.Stat_t) {
		i++
		mtime := 1_500_000_000_000_000_000 + i*7_777_777_777 + 123_456_789
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime)}
		must(t, unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW))
	})
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(1_400_000_000_987_654_321)}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, src.dir, ts, 0))
	return src
}

// removable lets t.TempDir's cleanup delete dir when not running as root,
// by opening up the read-only directories a test made or restored.
func removable(t *testing.T, dir string) {
	t.Cleanup(func() {
		d, err := fs.OpenDir(dir)
		if err != nil {
			return
		}
		defer d.Close()
		walkAt(t, d, "", func(dirfd int, name, _ string, st *unix.Stat_t) {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				unix.Fchmodat(dirfd, name, 0o700, 0)
			}
		})
	})
}

// walkAt calls fn for every entry below d, a directory's children before
// the directory, working on descriptors so long paths are reached.
func walkAt(t *testing.T, d *fs.Dir, rel string, fn func(dirfd int, name, rel string, st *unix.Stat_t)) {
	t.Helper()
	names, err := d.Names()
	must(t, err)
	dirfd := int(d.Fd())
	for _, name := range names {
		var st unix.Stat_t
		must(t, unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW))
		r := joinSnap(rel, name)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := d.OpenDir(name)
			must(t, err)
			walkAt(t, sub, r, fn)
			sub.Close()
		}
		fn(dirfd, name, r, &st)
	}
}

type inode struct{ dev, ino uint64 }

// counts are what compareTrees found in the source.
type counts struct {
	files, dirs, other, bytes uint64
	sparse                    bool
}

// compareTrees asserts dst is src restored: same names, types, contents,
// modes, owners, mtimes, symlink targets, devices, xattrs, hard-link
// groups, and holes where src has them.
func compareTrees(t *testing.T, src, dst string, owners bool) counts {
	t.Helper()
	var c counts
	srcToDst := map[inode]inode{}
	dstToSrc := map[inode]inode{}
	var cmp func(sdir, ddir *fs.Dir, rel string)
	cmp = func(sdir, ddir *fs.Dir, rel string) {
		sfd, dfd := int(sdir.Fd()), int(ddir.Fd())
		snames, err := sdir.Names()
		must(t, err)
		dnames, err := ddir.Names()
		must(t, err)
		if !slices.Equal(snames, dnames) {
			t.Errorf("%s: entries differ:\nsource   %q\nrestored %q", rel, snames, dnames)
			return
		}
		for _, name := range snames {
			r := joinSnap(rel, name)
			var s, d unix.Stat_t
			must(t, unix.Fstatat(sfd, name, &s, unix.AT_SYMLINK_NOFOLLOW))
			must(t, unix.Fstatat(dfd, name, &d, unix.AT_SYMLINK_NOFOLLOW))
			compareStat(t, r, &s, &d, owners)
			if s.Mode&unix.S_IFMT != d.Mode&unix.S_IFMT {
				continue
			}
			sx, err := sdir.Xattrs(name)
			must(t, err)
			dx, err := ddir.Xattrs(name)
			must(t, err)
			if !reflect.DeepEqual(sx, dx) {
				t.Errorf("%s: xattrs %q, restored %q", r, sx, dx)
			}
			switch s.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				c.files++
				c.bytes += uint64(s.Size)
				compareContent(t, r, sfd, dfd, name)
				si, di := inode{s.Dev, s.Ino}, inode{d.Dev, d.Ino}
				if v, ok := srcToDst[si]; ok && v != di {
					t.Errorf("%s: hard link not restored as a link", r)
				}
				if v, ok := dstToSrc[di]; ok && v != si {
					t.Errorf("%s: restored as a link to a different file", r)
				}
				srcToDst[si], dstToSrc[di] = di, si
				if s.Nlink != d.Nlink {
					t.Errorf("%s: %d links, restored %d", r, s.Nlink, d.Nlink)
				}
				if s.Blocks*512 < s.Size/2 {
					c.sparse = true
					if d.Blocks*512 >= d.Size/2 {
						t.Errorf("%s: sparse source (%d blocks), restored with %d blocks for %d bytes", r, s.Blocks, d.Blocks, d.Size)
					}
				}
			case unix.S_IFDIR:
				c.dirs++
				sub := func(d *fs.Dir) *fs.Dir {
					f, err := d.OpenDir(name)
					must(t, err)
					return f
				}
				s2, d2 := sub(sdir), sub(ddir)
				cmp(s2, d2, r)
				s2.Close()
				d2.Close()
			case unix.S_IFLNK:
				c.other++
				st, err := sdir.Readlink(name)
				must(t, err)
				dt, err := ddir.Readlink(name)
				must(t, err)
				if st != dt {
					t.Errorf("%s: symlink to %q, restored to %q", r, st, dt)
				}
			default:
				c.other++
				if s.Rdev != d.Rdev {
					t.Errorf("%s: rdev %#x, restored %#x", r, s.Rdev, d.Rdev)
				}
			}
		}
	}
	sdir, err := fs.OpenDir(src)
	must(t, err)
	defer sdir.Close()
	ddir, err := fs.OpenDir(dst)
	must(t, err)
	defer ddir.Close()
	var s, d unix.Stat_t
	must(t, unix.Fstat(int(sdir.Fd()), &s))
	must(t, unix.Fstat(int(ddir.Fd()), &d))
	compareStat(t, ".", &s, &d, owners)
	cmp(sdir, ddir, "")
	return c
}

func compareStat(t *testing.T, rel string, s, d *unix.Stat_t, owners bool) {
	t.Helper()
	if s.Mode&unix.S_IFMT != d.Mode&unix.S_IFMT {
		t.Errorf("%s: type %#o, restored %#o", rel, s.Mode&unix.S_IFMT, d.Mode&unix.S_IFMT)
		return
	}
	if s.Mode&unix.S_IFMT != unix.S_IFLNK && s.Mode&0o7777 != d.Mode&0o7777 {
		t.Errorf("%s: mode %#o, restored %#o", rel, s.Mode&0o7777, d.Mode&0o7777)
	}
	if s.Mtim.Nano() != d.Mtim.Nano() {
		t.Errorf("%s: mtime %d, restored %d", rel, s.Mtim.Nano(), d.Mtim.Nano())
	}
	if s.Mode&unix.S_IFMT == unix.S_IFREG && s.Size != d.Size {
		t.Errorf("%s: size %d, restored %d", rel, s.Size, d.Size)
	}
	if owners && (s.Uid != d.Uid || s.Gid != d.Gid) {
		t.Errorf("%s: owner %d:%d, restored %d:%d", rel, s.Uid, s.Gid, d.Uid, d.Gid)
	}
}

func compareContent(t *testing.T, rel string, sfd, dfd int, name string) {
	t.Helper()
	open := func(dirfd int) *os.File {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		must(t, err)
		return os.NewFile(uintptr(fd), name)
	}
	sf, df := open(sfd), open(dfd)
	defer sf.Close()
	defer df.Close()
	sb, db := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := 0; ; off += len(sb) {
		sn, serr := io.ReadFull(sf, sb)
		dn, derr := io.ReadFull(df, db)
		if !bytes.Equal(sb[:sn], db[:dn]) {
			t.Errorf("%s: content differs in the MiB at %d", rel, off)
			return
		}
		if serr != nil || derr != nil {
			if !errors.Is(serr, io.ErrUnexpectedEOF) && !errors.Is(serr, io.EOF) || !errors.Is(derr, io.ErrUnexpectedEOF) && !errors.Is(derr, io.EOF) {
				t.Errorf("%s: read: %v / %v", rel, serr, derr)
			}
			return
		}
	}
}

// snapPath is where an absolute source path lives in the snapshot.
func snapPath(abs string) string { return strings.TrimPrefix(abs, "/") }

// depth is the number of directories a restore creates for an absolute
// root, counting the root itself.
func depth(abs string) uint64 { return uint64(len(strings.Split(snapPath(abs), "/"))) }

func checkNoErrors(t *testing.T, res *Result) {
	t.Helper()
	for _, e := range res.Errors {
		t.Errorf("restore error: %s: %s", e.Path, e.Err)
	}
}

func TestRestoreFull(t *testing.T) {
	src := buildSource(t)
	r, dir := newRepo(t)
	tree := backup(t, r, src.dir)
	owners := os.Geteuid() == 0
	ctx := context.Background()

	for _, tc := range []struct {
		name    string
		workers int
		fresh   bool // reopen the repository: nothing cached
	}{
		{"one worker", 1, false},
		{"default workers", 0, true},
		{"many workers", 32, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr := r
			if tc.fresh {
				rr = reopen(t, dir)
			}
			target := filepath.Join(tempDir(t), "target")
			removable(t, target)
			prog := &Progress{}
			res, err := Run(ctx, rr, tree, Options{Target: target, Owners: owners, Workers: tc.workers, Progress: prog})
			if err != nil {
				t.Fatal(err)
			}
			checkNoErrors(t, res)
			c := compareTrees(t, src.dir, filepath.Join(target, src.dir), owners)
			if !c.sparse {
				t.Error("the source has no sparse file; the test is broken")
			}
			want := Result{Files: c.files, Dirs: c.dirs + depth(src.dir), Other: c.other, Bytes: c.bytes}
			if got := (Result{Files: res.Files, Dirs: res.Dirs, Other: res.Other, Bytes: res.Bytes}); !reflect.DeepEqual(got, want) {
				t.Errorf("result counts %+v, want %+v", got, want)
			}
			if prog.Files.Load() != res.Files || prog.Dirs.Load() != res.Dirs || prog.Bytes.Load() != res.Bytes {
				t.Errorf("progress %d files %d dirs %d bytes, result %+v", prog.Files.Load(), prog.Dirs.Load(), prog.Bytes.Load(), res)
			}
			if src.xattrs {
				v := make([]byte, 64)
				n, err := unix.Lgetxattr(filepath.Join(target, src.dir, "small.txt"), "user.comment", v)
				if err != nil || string(v[:n]) != "a comment" {
					t.Errorf("xattr user.comment = %q, %v", v[:n], err)
				}
			}
			if !src.device && owners {
				t.Log("could not make a device node; devices not tested")
			}

			// Restoring again over the result merges directories and keeps
			// every other entry, which already is the snapshot's, Overwrite
			// or not (TestRestoreAgain looks closer).
			res, err = Run(ctx, rr, tree, Options{Target: target, Owners: owners, Workers: tc.workers, Overwrite: OverwriteAlways})
			if err != nil {
				t.Fatal(err)
			}
			checkNoErrors(t, res)
			compareTrees(t, src.dir, filepath.Join(target, src.dir), owners)
		})
	}
}

func TestRestoreInclude(t *testing.T) {
	src := buildSource(t)
	r, _ := newRepo(t)
	tree := backup(t, r, src.dir)
	ctx := context.Background()
	sp := snapPath(src.dir)

	for _, tc := range []struct {
		name      string
		include   []string
		exclude   []string
		want      []string // present below the restored root
		absent    []string
		linked    [][2]string // pairs that must share an inode
		unmatched []string    // include patterns reported as matching nothing
		wantErr   string      // Run fails, nothing written
	}{
		{name: "subdirectory", include: []string{"/" + sp + "/dir"},
			want: []string{"dir/big.bin", "dir/sub/deeper/file.txt", "dir/sub/three-3", "dir/link-abs"}, absent: []string{"small.txt", "hl", "ro"}},
		{name: "end of the path, without a leading slash", include: []string{"src/dir"},
			want: []string{"dir/big.bin", "dir/sub/deeper/file.txt"}, absent: []string{"small.txt", "hl"}},
		{name: "nested includes", include: []string{"/" + sp + "/dir/sub", "/" + sp + "/dir"},
			want: []string{"dir/big.bin", "dir/sub/deeper/file.txt"}, absent: []string{"small.txt"}},
		{name: "the root: everything", include: []string{"/", "*.nothing"},
			want: []string{"small.txt", "dir/big.bin", "hl/a"}},
		{name: "single file", include: []string{"/" + sp + "/small.txt"},
			want: []string{"small.txt"}, absent: []string{"dir", "empty"}},
		{name: "name glob at any depth", include: []string{"*.txt"},
			want: []string{"small.txt", "dir/sub/deeper/file.txt", "ro/a.txt", "ro/b.txt", src.longPath}, absent: []string{"empty", "dir/big.bin", "hl", "other", "fifo"}},
		{name: "anchored glob", include: []string{"/" + sp + "/*/a*"},
			want: []string{"hl/a", "ro/a.txt"}, absent: []string{"hl/b", "ro/b.txt", "small.txt"}},
		{name: "double star", include: []string{"/" + sp + "/dir/**/file.txt"},
			want: []string{"dir/sub/deeper/file.txt"}, absent: []string{"dir/big.bin", "dir/sub/three-3"}},
		{name: "exclude a directory and a glob", exclude: []string{"/" + sp + "/dir", "*.img", "bad*"},
			want: []string{"small.txt", "hl/a", "ro/a.txt", src.longPath}, absent: []string{"dir", "sparse.img", "bad\xff\xfename"},
			// three-3, the first name of its group, is excluded: the
			// other two are still linked to each other.
			linked: [][2]string{{"hl/three", "other/three-2"}}},
		{name: "exclude wins over include", include: []string{"/" + sp + "/ro"}, exclude: []string{"b.txt"},
			want: []string{"ro/a.txt"}, absent: []string{"ro/b.txt", "small.txt"}},
		{name: "hard link whose first copy is excluded", include: []string{"/" + sp + "/hl", "/" + sp + "/other"},
			want: []string{"hl/a", "hl/b", "hl/three", "other/three-2"}, absent: []string{"dir"},
			linked: [][2]string{{"hl/a", "hl/b"}, {"hl/three", "other/three-2"}}},
		{name: "hard links, the first left out by a glob", include: []string{"three*"},
			want: []string{"hl/three", "other/three-2", "dir/sub/three-3"}, absent: []string{"hl/a", "dir/big.bin"},
			linked: [][2]string{{"hl/three", "other/three-2"}, {"hl/three", "dir/sub/three-3"}}},
		{name: "long path", include: []string{"/" + sp + "/" + src.longPath},
			want: []string{src.longPath}, absent: []string{"dir"}},
		{name: "a pattern that matches nothing", include: []string{"*.odt", "/" + sp + "/small.txt"},
			want: []string{"small.txt"}, absent: []string{"dir"}, unmatched: []string{"*.odt"}},
		{name: "missing path", include: []string{"/" + sp + "/dir", "/" + sp + "/nope"}, wantErr: "not found"},
		{name: "through a file", include: []string{"/" + sp + "/small.txt/x"}, wantErr: "not a directory"},
		{name: "dot-dot", include: []string{sp + "/../etc"}, wantErr: `".." is not allowed`},
		{name: "bad glob", exclude: []string{"[a"}, wantErr: `--exclude: pattern "[a": malformed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(tempDir(t), "target")
			removable(t, target)
			res, err := Run(ctx, r, tree, Options{Target: target, Include: tc.include, Exclude: tc.exclude, Owners: os.Geteuid() == 0})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Run error %v, want one containing %q", err, tc.wantErr)
				}
				if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("target was created: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkNoErrors(t, res)
			if !slices.Equal(res.Unmatched, tc.unmatched) {
				t.Errorf("unmatched patterns %q, want %q", res.Unmatched, tc.unmatched)
			}
			root := filepath.Join(target, src.dir)
			rootfd, err := unix.Open(root, dirFlags, 0)
			must(t, err)
			defer unix.Close(rootfd)
			srcfd, err := unix.Open(src.dir, dirFlags, 0)
			must(t, err)
			defer unix.Close(srcfd)
			// The directories leading to an include get their metadata,
			// applied after their (partial) contents.
			var s, d unix.Stat_t
			must(t, unix.Fstat(srcfd, &s))
			must(t, unix.Fstat(rootfd, &d))
			compareStat(t, src.dir, &s, &d, true)
			for _, p := range tc.want {
				sd, sn := openParent(t, srcfd, p)
				dd, dn := openParent(t, rootfd, p)
				var s, d unix.Stat_t
				must(t, unix.Fstatat(sd, sn, &s, unix.AT_SYMLINK_NOFOLLOW))
				if err := unix.Fstatat(dd, dn, &d, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					t.Errorf("%s not restored: %v", p, err)
				} else {
					compareStat(t, p, &s, &d, true)
					if s.Mode&unix.S_IFMT == unix.S_IFREG {
						compareContent(t, p, sd, dd, sn)
					}
				}
				unix.Close(sd)
				unix.Close(dd)
			}
			for _, p := range tc.absent {
				if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s restored although not included (%v)", p, err)
				}
			}
			for _, pair := range tc.linked {
				a, errA := os.Stat(filepath.Join(root, pair[0]))
				b, errB := os.Stat(filepath.Join(root, pair[1]))
				if errA != nil || errB != nil || !os.SameFile(a, b) {
					t.Errorf("%s and %s are not hard-linked (%v, %v)", pair[0], pair[1], errA, errB)
				}
			}
		})
	}
}

// openParent opens the directory holding rel below dirfd, for paths longer
// than PATH_MAX.
func openParent(t *testing.T, dirfd int, rel string) (int, string) {
	t.Helper()
	fd, err := unix.Dup(dirfd)
	must(t, err)
	parts := strings.Split(rel, "/")
	for _, name := range parts[:len(parts)-1] {
		next, err := unix.Openat(fd, name, dirFlags, 0)
		unix.Close(fd)
		must(t, err)
		fd = next
	}
	return fd, parts[len(parts)-1]
}

func TestRestoreExisting(t *testing.T) {
	base := tempDir(t)
	src := filepath.Join(base, "src")
	writeFile(t, filepath.Join(src, "f.txt"), []byte("new"))
	writeFile(t, filepath.Join(src, "d/g.txt"), []byte("g"))
	writeFile(t, filepath.Join(src, "z.txt"), []byte("z"))
	r, _ := newRepo(t)
	tree := backup(t, r, src)
	ctx := context.Background()

	readFile := func(t *testing.T, p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("read %s: %v", p, err)
		}
		return string(b)
	}
	isLink := func(t *testing.T, p string) bool {
		t.Helper()
		fi, err := os.Lstat(p)
		return err == nil && fi.Mode()&os.ModeSymlink != 0
	}

	for _, tc := range []struct {
		name      string
		overwrite Overwrite
		setup     func(t *testing.T, root, outside string)
		wantErrs  map[string]string // path below root -> error text
		check     func(t *testing.T, root, outside string)
	}{
		{
			name:     "file kept",
			setup:    func(t *testing.T, root, _ string) { writeFile(t, filepath.Join(root, "f.txt"), []byte("old")) },
			wantErrs: map[string]string{"f.txt": "exists; not overwritten (use --overwrite)"},
			check: func(t *testing.T, root, _ string) {
				if got := readFile(t, filepath.Join(root, "f.txt")); got != "old" {
					t.Errorf("existing file changed to %q", got)
				}
			},
		},
		{
			name:      "file replaced",
			overwrite: OverwriteAlways,
			setup: func(t *testing.T, root, _ string) {
				writeFile(t, filepath.Join(root, "f.txt"), []byte("old and longer"))
			},
			check: func(t *testing.T, root, _ string) {
				if got := readFile(t, filepath.Join(root, "f.txt")); got != "new" {
					t.Errorf("f.txt = %q, want the snapshot's content", got)
				}
			},
		},
		{
			name: "symlink in place of a file kept",
			setup: func(t *testing.T, root, outside string) {
				must(t, os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "f.txt")))
			},
			wantErrs: map[string]string{"f.txt": "exists; not overwritten"},
			check: func(t *testing.T, root, _ string) {
				if !isLink(t, filepath.Join(root, "f.txt")) {
					t.Error("the symlink was replaced without Overwrite")
				}
			},
		},
		{
			name:      "symlink in place of a file replaced, not followed",
			overwrite: OverwriteAlways,
			setup: func(t *testing.T, root, outside string) {
				must(t, os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "f.txt")))
			},
			check: func(t *testing.T, root, _ string) {
				if isLink(t, filepath.Join(root, "f.txt")) || readFile(t, filepath.Join(root, "f.txt")) != "new" {
					t.Error("f.txt is not the restored file")
				}
			},
		},
		{
			name: "symlink in place of a directory kept",
			setup: func(t *testing.T, root, outside string) {
				must(t, os.Symlink(outside, filepath.Join(root, "d")))
			},
			wantErrs: map[string]string{"d": "exists; not overwritten"},
			check: func(t *testing.T, root, _ string) {
				if !isLink(t, filepath.Join(root, "d")) {
					t.Error("the symlink was replaced without Overwrite")
				}
			},
		},
		{
			name:      "symlink in place of a directory replaced, not followed",
			overwrite: OverwriteAlways,
			setup: func(t *testing.T, root, outside string) {
				must(t, os.Symlink(outside, filepath.Join(root, "d")))
			},
			check: func(t *testing.T, root, _ string) {
				if isLink(t, filepath.Join(root, "d")) || readFile(t, filepath.Join(root, "d/g.txt")) != "g" {
					t.Error("d is not the restored directory")
				}
			},
		},
		{
			name:      "directory in place of a file",
			overwrite: OverwriteAlways,
			setup: func(t *testing.T, root, _ string) {
				writeFile(t, filepath.Join(root, "f.txt/inside"), []byte("keep"))
			},
			wantErrs: map[string]string{"f.txt": "a directory is in the way"},
			check: func(t *testing.T, root, _ string) {
				if readFile(t, filepath.Join(root, "f.txt/inside")) != "keep" {
					t.Error("the directory in the way was changed")
				}
			},
		},
		{
			name: "directories merged",
			setup: func(t *testing.T, root, _ string) {
				writeFile(t, filepath.Join(root, "d/extra"), []byte("extra"))
				must(t, os.Chmod(filepath.Join(root, "d"), 0o500))
			},
			check: func(t *testing.T, root, _ string) {
				if readFile(t, filepath.Join(root, "d/extra")) != "extra" || readFile(t, filepath.Join(root, "d/g.txt")) != "g" {
					t.Error("directory not merged")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tempDir(t)
			target := filepath.Join(dir, "target")
			outside := filepath.Join(dir, "outside")
			writeFile(t, filepath.Join(outside, "victim"), []byte("victim"))
			root := filepath.Join(target, src)
			must(t, os.MkdirAll(root, 0o755))
			tc.setup(t, root, outside)

			res, err := Run(ctx, r, tree, Options{Target: target, Overwrite: tc.overwrite})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, e := range res.Errors {
				got[strings.TrimPrefix(e.Path, root+"/")] = e.Err
			}
			if len(got) != len(tc.wantErrs) {
				t.Errorf("errors %q, want %q", got, tc.wantErrs)
			}
			for p, want := range tc.wantErrs {
				if !strings.Contains(got[p], want) {
					t.Errorf("error for %s = %q, want %q", p, got[p], want)
				}
			}
			tc.check(t, root, outside)
			// Unaffected entries are restored in any case, and nothing
			// outside the target is touched.
			if readFile(t, filepath.Join(root, "z.txt")) != "z" {
				t.Error("z.txt not restored")
			}
			if b, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(b) != "victim" {
				t.Errorf("file outside the target changed: %q, %v", b, err)
			}
			if ents, err := os.ReadDir(outside); err != nil || len(ents) != 1 {
				t.Errorf("directory outside the target changed: %v, %v", ents, err)
			}
		})
	}
}

func TestRestoreCorruptData(t *testing.T) {
	base := tempDir(t)
	src := filepath.Join(base, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("intact"))
	writeFile(t, filepath.Join(src, "big.bin"), gentree.RandomBytes(6<<20, 9))
	must(t, os.Link(filepath.Join(src, "big.bin"), filepath.Join(src, "big.link")))
	r, dir := newRepo(t)
	tree := backup(t, r, src)
	ctx := context.Background()

	n, err := snapshot.FindPath(ctx, r, tree, snapPath(src)+"/big.bin")
	must(t, err)
	if len(n.Content) < 2 {
		t.Fatalf("big.bin has %d chunks; want several", len(n.Content))
	}
	// Damage the last chunk, so earlier ones get written first.
	loc, ok := r.Index().Lookup(n.Content[len(n.Content)-1])
	if !ok {
		t.Fatal("chunk not in the index")
	}
	pack := filepath.Join(dir, "data", loc.Pack.String()[:2], loc.Pack.String())
	must(t, os.Chmod(pack, 0o600))
	data, err := os.ReadFile(pack)
	must(t, err)
	data[loc.Offset+loc.Length/2] ^= 0x40
	must(t, os.WriteFile(pack, data, 0o600))

	r = reopen(t, dir)
	target := filepath.Join(tempDir(t), "target")
	res, err := Run(ctx, r, tree, Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(target, src)
	got := map[string]string{}
	for _, e := range res.Errors {
		got[e.Path] = e.Err
	}
	for _, name := range []string{"big.bin", "big.link"} {
		p := filepath.Join(root, name)
		if e, ok := got[p]; !ok || !strings.Contains(e, "corrupt") {
			t.Errorf("error for %s = %q, want a corruption report; all errors: %q", p, e, got)
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left at the target after its content failed: %v", p, err)
		}
	}
	if len(got) != 2 {
		t.Errorf("errors %q, want exactly the two damaged files", got)
	}
	if b, err := os.ReadFile(filepath.Join(root, "a.txt")); err != nil || string(b) != "intact" {
		t.Errorf("a.txt = %q, %v", b, err)
	}
	if res.Files != 1 {
		t.Errorf("Files = %d, want 1", res.Files)
	}
}

func saveTree(t *testing.T, r *repo.Repository, tr *snapshot.Tree) blob.ID {
	t.Helper()
	buf := tr.Encode() // Encode does not validate names
	id := r.Key().ID(buf)
	if _, err := r.SaveBlob(context.Background(), blob.Tree, id, buf); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRestoreInvalidName(t *testing.T) {
	r, _ := newRepo(t)
	for _, name := range []string{"..", ".", "", "a/b", "nul\x00"} {
		for _, nested := range []bool{false, true} {
			where := "root"
			if nested {
				where = "nested"
			}
			t.Run(fmt.Sprintf("%q in %s", name, where), func(t *testing.T) {
				ctx := context.Background()
				// If the bad entry were followed, "pwned" would land
				// outside the target.
				payload := saveTree(t, r, &snapshot.Tree{Nodes: []snapshot.Node{{Name: "pwned", Type: snapshot.File, Mode: 0o644}}})
				bad := &snapshot.Tree{Nodes: []snapshot.Node{{Name: name, Type: snapshot.Dir, Mode: 0o755, Subtree: payload}}}
				root := bad
				if nested {
					root = &snapshot.Tree{Nodes: []snapshot.Node{
						{Name: "ok.txt", Type: snapshot.File, Mode: 0o644},
						{Name: "sub", Type: snapshot.Dir, Mode: 0o755, Subtree: saveTree(t, r, bad)},
					}}
				}
				rootID := saveTree(t, r, root)
				must(t, r.Flush(ctx))

				base := tempDir(t)
				target := filepath.Join(base, "deep", "target")
				res, err := Run(ctx, r, rootID, Options{Target: target})
				if !nested {
					if err == nil || !strings.Contains(err.Error(), "invalid tree") || !strings.Contains(err.Error(), quotedName(name)) {
						t.Fatalf("Run error %v, want one naming the entry %q", err, name)
					}
					if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("target created although the tree is invalid: %v", err)
					}
				} else {
					if err != nil {
						t.Fatal(err)
					}
					sub := filepath.Join(target, "sub")
					if len(res.Errors) != 1 || res.Errors[0].Path != sub ||
						!strings.Contains(res.Errors[0].Err, quotedName(name)) || !strings.Contains(res.Errors[0].Err, "invalid tree") {
						t.Errorf("errors %+v, want one for %s naming the entry %q", res.Errors, sub, name)
					}
					if _, err := os.Stat(filepath.Join(target, "ok.txt")); err != nil {
						t.Errorf("valid sibling not restored: %v", err)
					}
				}
				must(t, filepath.WalkDir(base, func(p string, _ os.DirEntry, err error) error {
					if filepath.Base(p) == "pwned" {
						t.Errorf("payload written at %s", p)
					}
					return err
				}))
			})
		}
	}
}

// quotedName renders name as the tree decoder's errors do; the empty name
// is reported as "empty entry name".
func quotedName(name string) string {
	if name == "" {
		return "empty entry name"
	}
	return strconv.Quote(name)
}

// TestWalkRefusesInvalidNames feeds the walker trees the decoder would
// reject, to check the restorer's own name check.
func TestWalkRefusesInvalidNames(t *testing.T) {
	base := tempDir(t)
	target := filepath.Join(base, "target")
	must(t, os.Mkdir(target, 0o700))
	root, err := fs.OpenDir(target)
	must(t, err)
	w := newRestorer(nil, Options{Target: target, Workers: 1}, root)
	top := &dirJob{dir: root, made: true, included: true}
	top.pending.Store(1)
	names := []string{"..", ".", "", "a/b", "x\x00y"}
	tree := &snapshot.Tree{}
	for _, name := range names {
		// Types the walker handles without reading the repository.
		tree.Nodes = append(tree.Nodes, snapshot.Node{Name: name, Type: snapshot.Symlink, Target: "/etc/passwd"})
	}
	tree.Nodes = append(tree.Nodes, snapshot.Node{Name: "ok", Type: snapshot.Symlink, Target: "/etc/passwd"})
	w.walk(context.Background(), top, tree)
	top.childDone(w)
	root.Close()

	if len(w.errs) != len(names) {
		t.Fatalf("errors %+v, want one per invalid name %q", w.errs, names)
	}
	for i, e := range w.errs {
		if e.Path != target || !strings.Contains(e.Err, quotedName(names[i])) {
			t.Errorf("error %+v, want one for %s naming %s", e, target, quotedName(names[i]))
		}
	}
	ents, err := os.ReadDir(base)
	if err != nil || len(ents) != 1 {
		t.Errorf("entries outside the target: %v, %v", ents, err)
	}
	if ents, err := os.ReadDir(target); err != nil || len(ents) != 1 || ents[0].Name() != "ok" {
		t.Errorf("target holds %v (%v), want only the valid entry", ents, err)
	}
}

func TestRestoreCancelled(t *testing.T) {
	base := tempDir(t)
	src := filepath.Join(base, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a"))
	r, _ := newRepo(t)
	tree := backup(t, r, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, r, tree, Options{Target: filepath.Join(base, "target")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error %v, want context.Canceled", err)
	}
}

// countingBackend counts ranged reads of data packs.
type countingBackend struct {
	backend.Backend
	loads atomic.Int64
}

func (c *countingBackend) Load(ctx context.Context, h backend.Handle, off, n int64) ([]byte, error) {
	if h.Type == backend.Data {
		c.loads.Add(1)
	}
	return c.Backend.Load(ctx, h, off, n)
}

// TestRestoreReadsPacksInWindows: small files stored next to each other
// are read with a few window reads, not one read per blob, and a blob
// damaged inside a window costs only its own file.
func TestRestoreReadsPacksInWindows(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	src := tempDir(t)
	const files = 400
	for i := range files {
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%d", i%4), fmt.Sprintf("f%03d", i)), gentree.RandomBytes(3000+i, uint64(i)))
	}
	tree := backup(t, r, src)

	be, err := local.Open(dir)
	must(t, err)
	counting := &countingBackend{Backend: be}
	r2, err := repo.Open(ctx, counting, password, repoOptions())
	must(t, err)
	defer r2.Close()
	dst := tempDir(t)
	res, err := Run(ctx, r2, tree, Options{Target: dst})
	must(t, err)
	checkNoErrors(t, res)
	compareTrees(t, src, filepath.Join(dst, snapPath(src)), false)
	t.Logf("%d data pack reads for %d files", counting.loads.Load(), files)
	if n := counting.loads.Load(); n > files/20 {
		t.Errorf("%d data reads for %d small files", n, files)
	}

	// Damage one blob in the middle of the pack: only its file fails.
	victim, err := snapshot.FindPath(ctx, r, tree, snapPath(src)+"/d1/f201")
	must(t, err)
	loc, ok := r.Index().Lookup(victim.Content[0])
	if !ok {
		t.Fatal("victim blob not indexed")
	}
	p := filepath.Join(dir, "data", loc.Pack.String()[:2], loc.Pack.String())
	os.Chmod(p, 0o600)
	data, err := os.ReadFile(p)
	must(t, err)
	data[loc.Offset+loc.Length/2] ^= 1
	must(t, os.WriteFile(p, data, 0o600))
	r3 := reopen(t, dir)
	dst2 := tempDir(t)
	res, err = Run(ctx, r3, tree, Options{Target: dst2})
	must(t, err)
	if len(res.Errors) != 1 || !strings.HasSuffix(res.Errors[0].Path, "d1/f201") {
		t.Fatalf("errors %+v, want only d1/f201", res.Errors)
	}
	if res.Files != files-1 {
		t.Fatalf("%d files restored, want %d", res.Files, files-1)
	}
}
