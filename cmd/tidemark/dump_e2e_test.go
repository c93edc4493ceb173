//go:build linux

package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"crypto/sha256"
	binenc "encoding/binary"
	"encoding/json"
	"errors"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/gentree"
	"golang.org/x/sys/unix"
)

// oddTree builds a tree with what archives and restores find hard: names
// in invalid UTF-8, with a newline and with a terminal escape, a file
// hard-linked under three names in two directories, symlinks (one
// dangling), a sparse file, an empty file and directory, a setuid file,
// a fifo, an xattr where the filesystem has them, and nanosecond mtimes.
func oddTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	w := func(p string, data []byte) {
		must(os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755))
		must(os.WriteFile(filepath.Join(root, p), data, 0o644))
	}
	w("docs/report.odt", []byte("the report"))
	w("docs/notes.txt", []byte("notes"))
	w("docs/old/report.odt", []byte("an old report"))
	w("bin/random.bin", gentree.RandomBytes(3<<20+7, 11))
	w("bad\xff\xfe.txt", []byte("not UTF-8"))
	w("new\nline.txt", []byte("a newline in the name"))
	w("esc\x1b]0;title\a.txt", []byte("an escape in the name"))
	w("empty", nil)
	w("links/a", []byte("hard-linked content"))
	must(os.Link(filepath.Join(root, "links/a"), filepath.Join(root, "links/b")))
	must(os.Link(filepath.Join(root, "links/a"), filepath.Join(root, "docs/c-link")))
	must(os.Symlink("../docs/report.odt", filepath.Join(root, "links/sym")))
	must(os.Symlink("/nonexistent/target", filepath.Join(root, "dangling")))
	must(os.MkdirAll(filepath.Join(root, "emptydir"), 0o700))
	w("tool", []byte("#!/bin/sh\n"))
	must(unix.Chmod(filepath.Join(root, "tool"), 0o4755)) // os.Chmod would take 0o4000 for no bit
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o640))
	f, err := os.Create(filepath.Join(root, "sparse.img"))
	must(err)
	must(f.Truncate(48 << 20))
	_, err = f.WriteAt([]byte("start"), 0)
	must(err)
	_, err = f.WriteAt([]byte("end"), 48<<20-3)
	must(err)
	must(f.Close())
	if err := unix.Lsetxattr(filepath.Join(root, "docs/notes.txt"), "user.tag", []byte("v\x00\xff"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	// Odd nanosecond mtimes, directories last.
	var paths []string
	must(filepath.WalkDir(root, func(p string, _ iofs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(1_600_000_000_000_000_000 + int64(i)*1_234_567_891)}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// srcEntry is one entry of a source tree, as an archive must show it.
type srcEntry struct {
	st      unix.Stat_t
	content []byte
	target  string
	xattrs  string // as xattrs returns them
}

// readTree lists root: every entry below it by slash path from root.
func readTree(t *testing.T, root string) map[string]srcEntry {
	t.Helper()
	out := map[string]srcEntry{}
	err := filepath.WalkDir(root, func(p string, _ iofs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		var e srcEntry
		if err := unix.Lstat(p, &e.st); err != nil {
			return err
		}
		switch e.st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if e.content, err = os.ReadFile(p); err != nil {
				return err
			}
		case unix.S_IFLNK:
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		e.xattrs = xattrs(p)
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTar checks that a tar holds exactly src, its entries named below
// prefix: types, modes, owners, nanosecond mtimes, contents, symlink
// targets, xattrs, and hard links that point to a name of the same inode.
func compareTar(t *testing.T, data []byte, src map[string]srcEntry, prefix string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	seen := map[string]bool{}
	inodes := map[string]uint64{} // archive name -> source inode of files
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(strings.TrimSuffix(h.Name, "/"), prefix)
		if !ok {
			t.Errorf("tar entry %q outside %q", h.Name, prefix)
			continue
		}
		e, ok := src[name]
		if !ok {
			t.Errorf("tar entry %q not in the source", h.Name)
			continue
		}
		seen[name] = true
		if got, want := h.Mode, int64(e.st.Mode&0o7777); got != want {
			t.Errorf("%q: mode %o, want %o", name, got, want)
		}
		if h.Uid != int(e.st.Uid) || h.Gid != int(e.st.Gid) {
			t.Errorf("%q: owner %d:%d", name, h.Uid, h.Gid)
		}
		if !h.ModTime.Equal(time.Unix(e.st.Mtim.Unix())) {
			t.Errorf("%q: mtime %v, want %v", name, h.ModTime, time.Unix(e.st.Mtim.Unix()))
		}
		var xs []string
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xs = append(xs, x+"="+v)
			}
		}
		slices.Sort(xs)
		if got := strings.Join(xs, ";"); got != e.xattrs {
			t.Errorf("%q: xattrs %q, want %q", name, got, e.xattrs)
		}
		switch e.st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if h.Typeflag != tar.TypeDir {
				t.Errorf("%q: type %c, want a directory", name, h.Typeflag)
			}
		case unix.S_IFREG:
			switch h.Typeflag {
			case tar.TypeReg:
				b, err := io.ReadAll(tr)
				if err != nil || !bytes.Equal(b, e.content) {
					t.Errorf("%q: content differs (%d bytes, want %d; %v)", name, len(b), len(e.content), err)
				}
				inodes[h.Name] = e.st.Ino
			case tar.TypeLink:
				if ino, ok := inodes[h.Linkname]; !ok || ino != e.st.Ino {
					t.Errorf("%q: a link to %q, which is not an earlier name of the same file", name, h.Linkname)
				}
			default:
				t.Errorf("%q: type %c, want a file", name, h.Typeflag)
			}
		case unix.S_IFLNK:
			if h.Typeflag != tar.TypeSymlink || h.Linkname != e.target {
				t.Errorf("%q: %c -> %q, want a symlink to %q", name, h.Typeflag, h.Linkname, e.target)
			}
		case unix.S_IFIFO:
			if h.Typeflag != tar.TypeFifo {
				t.Errorf("%q: type %c, want a fifo", name, h.Typeflag)
			}
		}
	}
	for name := range src {
		if !seen[name] {
			t.Errorf("%q missing from the tar", name)
		}
	}
}

// dumpTo runs dump with args, its stdout going to w.
func (e *env) dumpTo(w io.Writer, extraEnv []string, args ...string) (stderr string, err error) {
	e.t.Helper()
	cmd := e.command(append([]string{"dump"}, args...)...)
	cmd.Env = append(cmd.Env, extraEnv...)
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errOut
	err = cmd.Run()
	return errOut.String(), err
}

func TestDumpArchives(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	oddTree(t, src)
	e.mustRun("init")
	e.mustRun("backup", src)
	want := readTree(t, src)
	rel := strings.TrimPrefix(src, "/")

	// A directory as tar, named by its snapshot paths.
	var tarOut bytes.Buffer
	if stderr, err := e.dumpTo(&tarOut, nil, "latest", src); err != nil {
		t.Fatalf("dump latest %s: %v\n%s", src, err, stderr)
	}
	withRoot := map[string]srcEntry{}
	var rootSt unix.Stat_t
	if err := unix.Lstat(src, &rootSt); err != nil {
		t.Fatal(err)
	}
	withRoot[""] = srcEntry{st: rootSt}
	for k, v := range want {
		withRoot["/"+k] = v
	}
	compareTar(t, tarOut.Bytes(), withRoot, rel)

	// SNAPSHOT:DIR puts its contents at the top; the tar tool agrees.
	tarOut.Reset()
	if stderr, err := e.dumpTo(&tarOut, nil, "latest:"+src, "/"); err != nil {
		t.Fatalf("dump latest:src /: %v\n%s", err, stderr)
	}
	compareTar(t, tarOut.Bytes(), want, "")
	if tarBin, err := exec.LookPath("tar"); err == nil {
		x := filepath.Join(e.dir, "untarred")
		if err := os.Mkdir(x, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tarBin, "-x", "-C", x)
		cmd.Stdin = bytes.NewReader(tarOut.Bytes())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar -x: %v\n%s", err, out)
		}
		got := readTree(t, x)
		for name, w := range want {
			g, ok := got[name]
			if !ok || !bytes.Equal(g.content, w.content) || g.target != w.target || g.st.Mode&unix.S_IFMT != w.st.Mode&unix.S_IFMT {
				t.Errorf("tar -x: %q differs", name)
			}
		}
		if a, b := got["links/a"].st.Ino, got["links/b"].st.Ino; a != b || a != got["docs/c-link"].st.Ino {
			t.Errorf("tar -x: hard links not kept")
		}
	}

	// A subdirectory whose hard-linked file's first name (docs/c-link)
	// lies outside it: the first name inside holds the content.
	tarOut.Reset()
	if stderr, err := e.dumpTo(&tarOut, nil, "latest", src+"/links"); err != nil {
		t.Fatalf("dump links: %v\n%s", err, stderr)
	}
	linksOnly := map[string]srcEntry{"": withRoot["/links"]}
	for _, n := range []string{"a", "b", "sym"} {
		linksOnly["/"+n] = want["links/"+n]
	}
	compareTar(t, tarOut.Bytes(), linksOnly, rel+"/links")

	// Zip, into a file with --target.
	zipPath := filepath.Join(e.dir, "out.zip")
	r := e.mustRun("dump", "--archive", "zip", "--target", zipPath, "latest:"+src, "/")
	if !strings.Contains(r.stdout, "as zip:") || !strings.Contains(r.stderr, `fifo: not in the archive: a zip cannot hold a fifo`) {
		t.Fatalf("dump zip: %q %q", r.stdout, r.stderr)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	inZip := map[string]*zip.File{}
	for _, f := range zr.File {
		inZip[strings.TrimSuffix(f.Name, "/")] = f
	}
	for name, w := range want {
		f := inZip[name]
		typ := w.st.Mode & unix.S_IFMT
		if typ == unix.S_IFIFO {
			if f != nil {
				t.Errorf("%q: a fifo in the zip", name)
			}
			continue
		}
		if f == nil {
			t.Errorf("%q missing from the zip", name)
			continue
		}
		if f.Mode().Perm() != iofs.FileMode(w.st.Mode&0o777) || (typ == unix.S_IFDIR) != f.Mode().IsDir() || (typ == unix.S_IFLNK) != (f.Mode()&iofs.ModeSymlink != 0) {
			t.Errorf("%q: mode %v, want %o", name, f.Mode(), w.st.Mode)
		}
		if !f.Modified.Equal(time.Unix(w.st.Mtim.Sec, 0)) {
			t.Errorf("%q: modified %v, want %v", name, f.Modified, time.Unix(w.st.Mtim.Sec, 0))
		}
		if typ == unix.S_IFDIR {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if want := w.content; typ == unix.S_IFLNK && string(b) != w.target || typ == unix.S_IFREG && !bytes.Equal(b, want) {
			t.Errorf("%q: zip content differs", name)
		}
	}
	if inZip["tool"] == nil || inZip["tool"].Mode()&iofs.ModeSetuid == 0 {
		t.Errorf("setuid bit lost in the zip: %v", inZip["tool"].Mode())
	}
	if inZip["bad\xff\xfe.txt"] == nil || !inZip["bad\xff\xfe.txt"].NonUTF8 {
		t.Errorf("the non-UTF-8 name is not in the zip as it was")
	}

	// --json with --target; an existing target is not overwritten.
	tarPath := filepath.Join(e.dir, "out.tar")
	var res struct {
		Format, Path, Target string
		Files, Links, Bytes  uint64
	}
	if err := json.Unmarshal([]byte(e.mustRun("dump", "--json", "--target", tarPath, "latest", src).stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Format != "tar" || res.Path != src || res.Target != tarPath || res.Links != 2 || res.Files != 11 {
		t.Errorf("dump --json: %+v", res)
	}
	if b, err := os.ReadFile(tarPath); err != nil {
		t.Fatal(err)
	} else {
		compareTar(t, b, withRoot, rel)
	}
	before, _ := os.ReadFile(tarPath)
	if r := e.run("dump", "--target", tarPath, "latest", src); r.code != exitFailure || !strings.Contains(r.stderr, "--target "+tarPath+": exists; not overwritten") {
		t.Errorf("dump over an existing target: %d %s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(tarPath); !bytes.Equal(before, after) {
		t.Error("the existing target changed")
	}

	// Errors name what is wrong and leave no output file.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"latest", src + "/nope"}, `path "` + rel + `/nope" not found in snapshot`},
		{[]string{"latest", src + "/dangling"}, "is a symlink to /nonexistent/target"},
		{[]string{"--archive", "rar", "latest", src}, `--archive "rar": want tar or zip`},
		{[]string{"latest:" + src + "/empty", "/"}, "is a file, not a directory"},
		{[]string{"latest"}, "dump: give the snapshot and the path to dump"},
		{[]string{"latest", "--host", "nowhere", src}, "latest (--host nowhere): no matching snapshot"},
	} {
		out := filepath.Join(e.dir, "failed.out")
		r := e.run(append(append([]string{"dump"}, tc.args...), "--target", out)...)
		if r.code != exitFailure || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("dump %q: exit %d, %s; want %q", tc.args, r.code, r.stderr, tc.want)
		}
		if ents, _ := filepath.Glob(filepath.Join(e.dir, "*failed.out*")); len(ents) != 0 {
			t.Errorf("dump %q left %q", tc.args, ents)
		}
	}
}

// TestDumpLargeFileStreams: a 200 MiB file goes to stdout byte for byte
// while the heap stays a small fraction of it.
func TestDumpLargeFileStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MiB")
	}
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 200 << 20
	f, err := os.Create(filepath.Join(src, "large.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.New()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for range size / len(buf) {
		for i := 0; i < len(buf); i += 8 {
			binenc.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		if _, err := io.MultiWriter(f, sum).Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := sum.Sum(nil)
	e.mustRun("init")
	e.mustRun("backup", src)

	got := sha256.New()
	var n countWriter
	stderr, err := e.dumpTo(io.MultiWriter(got, &n), []string{"TIDEMARK_PEAK_HEAP=1"}, "latest", src+"/large.bin")
	if err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	if n != size || !bytes.Equal(got.Sum(nil), want) {
		t.Fatalf("dumped %d bytes, want %d, same content %v", n, size, bytes.Equal(got.Sum(nil), want))
	}
	m := regexp.MustCompile(`peak live heap (\d+) MiB`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no heap report: %s", stderr)
	}
	if heap, _ := strconv.Atoi(m[1]); heap > 48 {
		t.Errorf("peak live heap %d MiB while dumping a %d MiB file: memory grows with the file", heap, size>>20)
	} else {
		t.Logf("peak live heap %d MiB for a %d MiB file", heap, size>>20)
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
