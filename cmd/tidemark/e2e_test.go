// The end-to-end tests drive the Linux binary with what only Linux (and
// root) has: other users' credentials, devices, fanotify, getdents.

//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backend/location"
	"github.com/tidemark/tidemark/internal/backend/s3/s3test"
	"github.com/tidemark/tidemark/internal/backend/sftp/sftptest"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
	"golang.org/x/sys/unix"
)

// binary is the tidemark executable built for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tidemark-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by everyone: one test runs the binary as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tidemark")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's repository, cache and password.
type env struct {
	t    *testing.T
	dir  string
	repo string // the repository location, as given to -r
	// store is the local directory holding the repository's objects
	// (behind the server for S3 and SFTP), for tests that damage them.
	store    string
	cache    string
	password string
	cred     *syscall.Credential
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, repo: filepath.Join(dir, "repo"), store: filepath.Join(dir, "repo"), cache: filepath.Join(dir, "cache"), password: filepath.Join(dir, "pw")}
	if err := os.WriteFile(e.password, []byte("correct horse\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Made now, not by the first command: it sits beside the backed-up
	// trees and would change their parent's mtime between backups.
	if err := os.Mkdir(e.cache, 0o700); err != nil {
		t.Fatal(err)
	}
	return e
}

// forEachBackend runs fn with a fresh env on each backend: a local
// directory, a real S3 server (versitygw) and a real SFTP server (sshd),
// both started for the test.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, kind := range []string{"local", "s3", "sftp"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			e.useBackend(kind)
			fn(t, e)
		})
	}
}

// useBackend points e at a new repository on a server of the given kind.
// Credentials reach the binary the way a user's would: AWS_* variables
// for S3, and ~/.ssh/config with a host alias, key and known_hosts for
// SFTP.
func (e *env) useBackend(kind string) {
	switch kind {
	case "s3":
		srv := s3test.Start(e.t)
		e.t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		e.t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		e.t.Setenv("AWS_SESSION_TOKEN", "")
		e.repo = "s3:http://" + srv.Endpoint + "/tidemark/repo"
		e.store = filepath.Join(srv.Dir, "tidemark", "repo")
	case "sftp":
		srv := sftptest.Start(e.t)
		home := filepath.Join(e.dir, "home")
		conf := fmt.Sprintf("Host backup-server\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n  UserKnownHostsFile %s\n",
			srv.Host, srv.Port, srv.User, srv.KeyFile, srv.KnownHosts)
		if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(conf), 0o600); err != nil {
			e.t.Fatal(err)
		}
		e.t.Setenv("HOME", home)
		e.t.Setenv("SSH_AUTH_SOCK", "")
		e.repo = "sftp:backup-server:" + srv.Dir + "/repo"
		e.store = filepath.Join(srv.Dir, "repo")
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// command builds a tidemark invocation on the test's repository, cache and
// password, with the environment's TIDEMARK_* settings removed.
func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"-r", e.repo, "--password-file", e.password, "--cache-dir", e.cache, "--insecure-kdf"}, args...)...)
	cmd.Env = withoutTidemarkEnv(os.Environ())
	if e.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
	}
	return cmd
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run %v: %v", args, err)
	}
	return result{code, out.String(), errOut.String()}
}

// withoutTidemarkEnv drops the repository and password settings of the
// environment, so only the flags the tests pass count.
func withoutTidemarkEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "TIDEMARK_PASSWORD=") || strings.HasPrefix(kv, "TIDEMARK_PASSWORD_FILE=") || strings.HasPrefix(kv, "TIDEMARK_REPOSITORY=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("tidemark %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

type snapJSON struct {
	ID     string `json:"id"`
	Time   time.Time
	Host   string
	Roots  []string
	Tree   string
	Scan   struct{ Mode, Reason string }
	Totals struct{ Bytes, Files, Dirs, Other uint64 }
}

func (e *env) snapshots() []snapJSON {
	e.t.Helper()
	var sns []snapJSON
	if err := json.Unmarshal([]byte(e.mustRun("snapshots", "--json").stdout), &sns); err != nil {
		e.t.Fatal(err)
	}
	return sns
}

// richTree builds a tree with every kind of entry a backup must handle.
func richTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	w := func(p string, data []byte, mode os.FileMode) {
		must(os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755))
		must(os.WriteFile(filepath.Join(root, p), data, mode))
	}
	w("big.bin", gentree.RandomBytes(9<<20+12345, 1), 0o644)
	w("empty", nil, 0o644)
	w("dir/text.txt", bytes.Repeat([]byte("compressible text\n"), 5000), 0o600)
	w("dir/sub/setuid", []byte("#!/bin/sh\n"), 0o755)
	must(os.Chmod(filepath.Join(root, "dir/sub/setuid"), 0o4755))
	w("bad\xff\xfename", []byte("non-UTF-8 name"), 0o644)
	w("links/a", []byte("hard linked"), 0o644)
	must(os.Link(filepath.Join(root, "links/a"), filepath.Join(root, "links/b")))
	must(os.Link(filepath.Join(root, "links/a"), filepath.Join(root, "dir/c-link")))
	must(os.Symlink("../big.bin", filepath.Join(root, "dir/sym")))
	must(os.Symlink("/nonexistent/target", filepath.Join(root, "dangling")))
	must(os.Symlink("loop", filepath.Join(root, "loop")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o640))
	// Sparse: 64 MiB with data only at the end.
	f, err := os.Create(filepath.Join(root, "sparse"))
	must(err)
	_, err = f.WriteAt([]byte("end"), 64<<20)
	must(err)
	must(f.Close())
	// A path longer than PATH_MAX.
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(err)
	name := strings.Repeat("n", 200)
	for i := 0; i < 25; i++ {
		must(unix.Mkdirat(fd, name, 0o755))
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		must(err)
		unix.Close(fd)
		fd = nfd
	}
	lfd, err := unix.Openat(fd, "deep.txt", unix.O_CREAT|unix.O_WRONLY, 0o644)
	must(err)
	_, err = unix.Write(lfd, []byte("deep"))
	must(err)
	unix.Close(lfd)
	unix.Close(fd)
	// xattrs, where the filesystem supports them.
	if err := unix.Lsetxattr(filepath.Join(root, "dir/text.txt"), "user.tidemark", []byte("value\x00bin"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	// Odd mtimes.
	must(os.Chtimes(filepath.Join(root, "empty"), time.Unix(1e9, 123456789), time.Unix(1e9, 123456789)))
	must(os.Chtimes(filepath.Join(root, "dir"), time.Unix(1.5e9, 1), time.Unix(1.5e9, 1)))
}

func TestBackupRestoreRoundTrip(t *testing.T) { forEachBackend(t, roundTrip) }

func roundTrip(t *testing.T, e *env) {
	src := filepath.Join(e.dir, "src")
	richTree(t, src)
	e.mustRun("init")
	time.Sleep(1100 * time.Millisecond) // let ctimes age past the racy window
	out := e.mustRun("backup", "--json", src)
	var b1 struct {
		Snapshot string
		Tree     string
		Scan     struct{ Mode, Reason string }
		Totals   struct{ Bytes, Files, Dirs, Other uint64 }
		Errors   []struct{ Path, Error string }
	}
	if err := json.Unmarshal([]byte(out.stdout), &b1); err != nil {
		t.Fatalf("%v: %s", err, out.stdout)
	}
	if b1.Scan.Mode != "full" || !strings.Contains(b1.Scan.Reason, "no parent") {
		t.Fatalf("first backup scan %+v", b1.Scan)
	}
	// big.bin, empty, text.txt, setuid, bad name, 3 links, sparse, deep.txt.
	if b1.Totals.Files != 10 || b1.Totals.Other != 4 {
		t.Fatalf("totals %+v", b1.Totals)
	}
	wantBytes := uint64(9<<20+12345) + 18*5000 + 10 + 14 + 3*11 + 64<<20 + 3 + 4
	if b1.Totals.Bytes != wantBytes {
		t.Fatalf("total bytes %d, want %d", b1.Totals.Bytes, wantBytes)
	}

	// A second backup of the unchanged tree has the same root tree.
	e.mustRun("backup", src)
	sns := e.snapshots()
	if len(sns) != 2 || sns[1].Scan.Mode != "parent-assisted" {
		t.Fatalf("snapshots %+v", sns)
	}
	// The trees of src are identical (the root may differ: other tests
	// change /tmp meanwhile).
	if a, b := e.subtree(sns[0].Tree, src), e.subtree(sns[1].Tree, src); a != b {
		t.Fatalf("unchanged tree got a new ID: %s vs %s", a, b)
	}
	if d := e.mustRun("diff", sns[0].ID[:8], sns[1].ID); strings.Contains(d.stdout, src) {
		t.Fatalf("diff of identical snapshots: %s", d.stdout)
	}
	// A name that is not UTF-8 is shown escaped, never raw.
	if ls := e.mustRun("ls", "latest"); !strings.Contains(ls.stdout, "/dir/sub/setuid") || !strings.Contains(ls.stdout, `bad\xff\xfename"`) ||
		strings.Contains(ls.stdout, "bad\xff\xfename") {
		t.Fatalf("ls: %s", ls.stdout)
	}
	if st := e.mustRun("stats", "--json"); !strings.Contains(st.stdout, `"snapshots": 2`) {
		t.Fatalf("stats: %s", st.stdout)
	}

	target := filepath.Join(e.dir, "restore")
	e.mustRun("restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src))
	e.mustRun("check", "--read-data")

	// Restoring again into the same place keeps what is already there
	// (every kind of entry: hard links, symlinks, the fifo, the sparse
	// file, the path beyond PATH_MAX) and is no error.
	again := e.mustRun("restore", "latest", "--target", target, "--json")
	var ar struct{ Files, Unchanged uint64 }
	if err := json.Unmarshal([]byte(again.stdout), &ar); err != nil || ar.Files != 0 || ar.Unchanged != b1.Totals.Files+b1.Totals.Other {
		t.Fatalf("restore again: %+v %v\n%s", ar, err, again.stdout)
	}
	compareTrees(t, src, filepath.Join(target, src))

	// Restoring over files that differ needs --overwrite.
	if err := os.WriteFile(filepath.Join(target, src, "empty"), []byte("local edit"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run("restore", "latest", "--target", target)
	if r.code != 1 || !strings.Contains(r.stderr, "empty") {
		t.Fatalf("restore over existing files: exit %d, %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(target, src, "empty")); string(b) != "local edit" {
		t.Fatal("existing file overwritten without --overwrite")
	}
	e.mustRun("restore", "latest", "--target", target, "--overwrite")
	compareTrees(t, src, filepath.Join(target, src))

	// A change shows in diff; --include restores one subtree.
	if err := os.WriteFile(filepath.Join(src, "dir/text.txt"), []byte("new content"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	sns = e.snapshots()
	d := e.mustRun("diff", sns[1].ID, sns[2].ID)
	if !strings.Contains(d.stdout, "M  "+src[1:]+"/dir/text.txt") && !strings.Contains(d.stdout, "M  /"+src[1:]+"/dir/text.txt") {
		t.Fatalf("diff: %s", d.stdout)
	}
	part := filepath.Join(e.dir, "partial")
	e.mustRun("restore", "latest", "--target", part, "--include", src+"/dir")
	if b, err := os.ReadFile(filepath.Join(part, src, "dir/text.txt")); err != nil || string(b) != "new content" {
		t.Fatalf("include restore: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(part, src, "big.bin")); err == nil {
		t.Fatal("include restored more than asked")
	}
}

// compareTrees checks that b is an exact copy of a: entries, types, modes,
// owners, sizes, contents, mtimes, symlink targets, xattrs, hard-link
// groups, and that sparse files stayed sparse.
func compareTrees(t *testing.T, a, b string) {
	t.Helper()
	linksA, linksB := map[uint64]string{}, map[uint64]string{}
	var walk func(rel string)
	walk = func(rel string) {
		pa, pb := filepath.Join(a, rel), filepath.Join(b, rel)
		if len(pa) > 3000 {
			// Past PATH_MAX: compare through the directory fds instead.
			compareDeep(t, pa, pb)
			return
		}
		var sa, sb unix.Stat_t
		if err := unix.Lstat(pa, &sa); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(pb, &sb); err != nil {
			t.Fatalf("%s: missing in restore: %v", rel, err)
		}
		if sa.Mode != sb.Mode || sa.Uid != sb.Uid || sa.Gid != sb.Gid {
			t.Errorf("%s: mode/owner %o %d:%d vs %o %d:%d", rel, sa.Mode, sa.Uid, sa.Gid, sb.Mode, sb.Uid, sb.Gid)
		}
		if sa.Mode&unix.S_IFMT != unix.S_IFDIR && sa.Mtim != sb.Mtim {
			t.Errorf("%s: mtime %v vs %v", rel, sa.Mtim, sb.Mtim)
		}
		xa, xb := xattrs(pa), xattrs(pb)
		if xa != xb {
			t.Errorf("%s: xattrs %q vs %q", rel, xa, xb)
		}
		switch sa.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			da, _ := os.ReadFile(pa)
			db, _ := os.ReadFile(pb)
			if !bytes.Equal(da, db) {
				t.Errorf("%s: contents differ", rel)
			}
			if sa.Nlink > 1 {
				if other, ok := linksA[sa.Ino]; ok {
					var so unix.Stat_t
					unix.Lstat(filepath.Join(b, other), &so)
					if so.Ino != sb.Ino {
						t.Errorf("%s: not hard-linked to %s in restore", rel, other)
					}
				}
				linksA[sa.Ino], linksB[sb.Ino] = rel, rel
			}
			if sa.Blocks < sa.Size/512/4 && sb.Blocks > sa.Blocks*4+64 {
				t.Errorf("%s: sparse file restored dense (%d blocks vs %d)", rel, sb.Blocks, sa.Blocks)
			}
		case unix.S_IFLNK:
			ta, _ := os.Readlink(pa)
			tb, _ := os.Readlink(pb)
			if ta != tb {
				t.Errorf("%s: symlink %q vs %q", rel, ta, tb)
			}
		case unix.S_IFDIR:
			ea, _ := os.ReadDir(pa)
			eb, _ := os.ReadDir(pb)
			if len(ea) != len(eb) {
				t.Errorf("%s: %d entries vs %d", rel, len(ea), len(eb))
			}
			for _, d := range ea {
				walk(filepath.Join(rel, d.Name()))
			}
			if sa.Mtim != sb.Mtim {
				t.Errorf("%s: dir mtime %v vs %v", rel, sa.Mtim, sb.Mtim)
			}
		}
	}
	walk("")
}

// compareDeep compares the one file at the bottom of the long-path chain.
func compareDeep(t *testing.T, a, b string) {
	t.Helper()
	read := func(p string) string {
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range parts {
			nfd, err := unix.Openat(fd, part, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			unix.Close(fd)
			if err != nil {
				t.Fatalf("open %s: %v", part, err)
			}
			fd = nfd
		}
		defer unix.Close(fd)
		for {
			names := make([]byte, 4096)
			n, _ := unix.Getdents(fd, names)
			_, _, ents := unix.ParseDirent(names[:n], -1, nil)
			if len(ents) == 1 && ents[0] == "deep.txt" {
				f, err := unix.Openat(fd, "deep.txt", unix.O_RDONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 100)
				m, _ := unix.Read(f, buf)
				unix.Close(f)
				return string(buf[:m])
			}
			if len(ents) != 1 {
				t.Fatalf("unexpected entries %v", ents)
			}
			nfd, err := unix.Openat(fd, ents[0], unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			fd = nfd
		}
	}
	if x, y := read(a), read(b); x != y || x != "deep" {
		t.Errorf("long path file: %q vs %q", x, y)
	}
}

func xattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		v := make([]byte, 4096)
		m, _ := unix.Lgetxattr(p, name, v)
		out = append(out, name+"="+string(v[:max(m, 0)]))
	}
	return strings.Join(out, ";")
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := e.run("snapshots"); r.code != exitNoRepo {
		t.Fatalf("no repository: exit %d (%s)", r.code, r.stderr)
	}
	e.mustRun("init")
	if r := e.run("init"); r.code != exitFailure || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("init twice: exit %d (%s)", r.code, r.stderr)
	}
	good := e.password
	e.password = filepath.Join(e.dir, "wrong")
	os.WriteFile(e.password, []byte("wrong"), 0o644)
	if r := e.run("snapshots"); r.code != exitWrongPass {
		t.Fatalf("wrong password: exit %d (%s)", r.code, r.stderr)
	}
	e.password = good
	if r := e.run("backup", filepath.Join(e.dir, "does-not-exist")); r.code != exitFailure || !strings.Contains(r.stderr, "does-not-exist") {
		t.Fatalf("missing path: exit %d (%s)", r.code, r.stderr)
	}
	if r := e.run("backup", "--exclude", "[", src); r.code != exitFailure || !strings.Contains(r.stderr, "exclude pattern") {
		t.Fatalf("bad exclude: exit %d (%s)", r.code, r.stderr)
	}

	// An exclusive lock held by a live process blocks backups.
	ctx := context.Background()
	be, err := local.Open(e.repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, []byte("correct horse"), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lk, err := r.Lock(ctx, true, "test")
	if err != nil {
		t.Fatal(err)
	}
	if res := e.run("backup", src); res.code != exitLocked || !strings.Contains(res.stderr, "locked") {
		t.Fatalf("locked: exit %d (%s)", res.code, res.stderr)
	}
	if err := lk.Unlock(); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)

	// Unreadable files: the backup finishes, lists them, exits 3.
	if err := os.WriteFile(filepath.Join(src, "secret"), []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "public"), []byte("y"), 0o644)
	if os.Geteuid() == 0 {
		// Root reads everything; run as nobody to get a permission error.
		os.Chmod(filepath.Dir(e.dir), 0o755)
		for _, p := range []string{e.dir, e.repo, src} {
			filepath.Walk(p, func(p string, _ os.FileInfo, _ error) error { return os.Chmod(p, 0o777) })
		}
		os.Chmod(filepath.Join(src, "secret"), 0)
		os.Chmod(e.password, 0o644)
		e.cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		e.cache = filepath.Join(e.dir, "cache-nobody")
	}
	res := e.run("backup", src)
	if res.code != exitPartial || !strings.Contains(res.stderr, "secret") {
		t.Fatalf("unreadable file: exit %d (%s)", res.code, res.stderr)
	}
}

// subtree returns the tree ID of path in the snapshot tree root.
func (e *env) subtree(root, path string) string {
	e.t.Helper()
	ctx := context.Background()
	be, err := location.Open(ctx, e.repo, location.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, []byte("correct horse"), repo.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Close()
	id, err := blob.ParseID(root)
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := snapshot.FindPath(ctx, r, id, path)
	if err != nil {
		e.t.Fatal(err)
	}
	return n.Subtree.String()
}

// TestInterruptExitCode: SIGINT stops a backup with exit code 130 and the
// repository stays usable.
func TestInterruptExitCode(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 400, Seed: 5, LargeEvery: 2, LargeSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("init")
	cmd := e.command("backup", src)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("interrupted backup: %v (%s)", err, errOut.String())
	}
	if len(e.snapshots()) != 0 {
		t.Fatal("an interrupted backup saved a snapshot")
	}
	e.mustRun("check")
	e.mustRun("backup", src)
}

// TestMultiGiBFile backs up and restores a 3 GiB file (sparse on disk,
// with data at both ends and past the 2 GiB and 4 GiB offsets' low bits).
func TestMultiGiBFile(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	os.MkdirAll(src, 0o755)
	f, err := os.Create(filepath.Join(src, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1<<31 - 3, 3<<30 - 5} {
		if _, err := f.WriteAt([]byte("marker"), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	e.mustRun("init")
	out := e.mustRun("backup", "--json", src)
	if !strings.Contains(out.stdout, fmt.Sprintf(`"bytes": %d`, int64(3<<30)+1)) {
		t.Fatalf("total size not reported exactly: %s", out.stdout)
	}
	target := filepath.Join(e.dir, "restore")
	e.mustRun("restore", "latest", "--target", target)
	g, err := os.Open(filepath.Join(target, src, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	fi, _ := g.Stat()
	if fi.Size() != 3<<30+1 {
		t.Fatalf("restored size %d", fi.Size())
	}
	for _, off := range []int64{0, 1<<31 - 3, 3<<30 - 5} {
		buf := make([]byte, 6)
		if _, err := g.ReadAt(buf, off); err != nil || string(buf) != "marker" {
			t.Fatalf("at %d: %q %v", off, buf, err)
		}
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Blocks*512 > 64<<20 {
		t.Fatalf("restored file is not sparse: %d bytes allocated", st.Blocks*512)
	}
}
