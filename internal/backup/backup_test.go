//go:build linux

package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
	"golang.org/x/sys/unix"
	"pgregory.net/rapid"
)

const racy = 15 * time.Millisecond

// newRepo makes a repository in dir. Each property-test case gets its own,
// so costs do not grow with the number of cases run before it.
func newRepo(t interface{ Fatal(...any) }, dir string) *repo.Repository {
	be, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	// These tests compare snapshots; crash safety is tested elsewhere, so
	// they skip fsync, which otherwise dominates their run time.
	r, err := repo.Init(context.Background(), be.WithoutSync(), []byte("pw"), repo.Options{KDF: func() (crypto.KDFParams, error) {
		p, err := crypto.DefaultKDFParams()
		p.Time, p.Memory = 1, 8*1024
		return p, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fsModel tracks the paths the random operations created, so operations
// pick existing targets.
type fsModel struct {
	root  string
	files []string
	dirs  []string
	n     int
	// outside, when set, is a directory outside the roots (and outside
	// what a watcher watches) for hard links whose other names are inside:
	// made from inside (linkOut; inotify cannot see that), made from a
	// file outside, written and removed through.
	outside  string
	linkOut  bool
	outLinks []string
	// touched collects the directories a change journal would report:
	// the parent of every entry an operation created, changed or removed.
	touched map[string]bool
	// parked are entries moved out of the root (to outside), for moving
	// back in later.
	parked []string
	// maps are live shared writable mappings made by the "mmap" operation,
	// kept until close: stores through them raise no event.
	maps [][]byte
}

// close drops what the operations left open (mappings).
func (m *fsModel) close() {
	for _, b := range m.maps {
		unix.Munmap(b)
	}
	m.maps = nil
}

func (m *fsModel) touch(paths ...string) {
	if m.touched == nil {
		m.touched = map[string]bool{}
	}
	for _, p := range paths {
		m.touched[filepath.Dir(p)] = true
	}
}

func (m *fsModel) takeTouched() []string {
	out := []string{}
	for d := range m.touched {
		out = append(out, d)
	}
	m.touched = nil
	sort.Strings(out)
	return out
}

func (m *fsModel) fresh(t *rapid.T, label string) string {
	m.n++
	dir := rapid.SampledFrom(m.dirs).Draw(t, label+"-dir")
	return filepath.Join(dir, fmt.Sprintf("%s%d", label, m.n))
}

func (m *fsModel) refresh() {
	m.files, m.dirs = nil, nil
	filepath.Walk(m.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		switch {
		case fi.IsDir():
			m.dirs = append(m.dirs, p)
		case fi.Mode().IsRegular():
			m.files = append(m.files, p)
		}
		return nil
	})
	sort.Strings(m.files)
	sort.Strings(m.dirs)
}

// mutate applies one random filesystem operation.
func (m *fsModel) mutate(t *rapid.T) {
	m.refresh()
	ops := []string{"create", "mkdir", "symlink"}
	if len(m.files) > 0 {
		ops = append(ops, "append", "same-size", "truncate", "rename", "delete", "hardlink", "chmod", "xattr", "touch", "replace-type")
	}
	if len(m.files) > 1 {
		ops = append(ops, "rename-over")
	}
	if len(m.dirs) > 1 {
		ops = append(ops, "rmdir", "move-dir", "replace-dir")
	}
	// Operations the journal's adversary tries: atomic exchanges, owners,
	// directory times, files that live between two events, stores through
	// a shared mapping, moves out of the root and back in.
	ops = append(ops, "flash", "dir-times")
	if len(m.files)+len(m.dirs) > 2 {
		ops = append(ops, "exchange", "chown")
	}
	if len(m.files) > 0 {
		ops = append(ops, "mmap", "link-dance")
	}
	if m.outside != "" && len(m.dirs)+len(m.files) > 1 {
		ops = append(ops, "move-out")
	}
	if len(m.parked) > 0 {
		ops = append(ops, "move-in")
	}
	// Links with a name outside the roots, now and then (each makes the
	// next backup scan fully, as it must).
	if m.outside != "" && rapid.IntRange(0, 3).Draw(t, "outside") == 0 {
		ops = append(ops, "link-in")
		if m.linkOut && len(m.files) > 0 {
			ops = append(ops, "link-out")
		}
		if len(m.outLinks) > 0 {
			ops = append(ops, "write-out", "chmod-out", "unlink-out")
		}
	}
	op := rapid.SampledFrom(ops).Draw(t, "op")
	pick := func() string {
		p := rapid.SampledFrom(m.files).Draw(t, "file")
		m.touch(p)
		return p
	}
	var err error
	switch op {
	case "create":
		p := m.fresh(t, "f")
		m.touch(p)
		err = os.WriteFile(p, []byte(rapid.StringN(0, 100, -1).Draw(t, "data")), 0o644)
	case "mkdir":
		p := m.fresh(t, "d")
		m.touch(p)
		err = os.Mkdir(p, 0o755)
	case "symlink":
		p := m.fresh(t, "l")
		m.touch(p)
		err = os.Symlink(rapid.StringN(1, 20, -1).Draw(t, "target"), p)
	case "append":
		var f *os.File
		if f, err = os.OpenFile(pick(), os.O_APPEND|os.O_WRONLY, 0); err == nil {
			_, err = f.WriteString("+")
			f.Close()
		}
	case "same-size":
		// Overwrite with the same size and put the old mtime back: only
		// the ctime tells.
		p := pick()
		fi, _ := os.Stat(p)
		data, _ := os.ReadFile(p)
		for i := range data {
			data[i] ^= 1
		}
		if err = os.WriteFile(p, data, 0o644); err == nil {
			err = os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}
	case "truncate":
		err = os.Truncate(pick(), 0)
	case "rename":
		from, to := pick(), m.fresh(t, "r")
		m.touch(to)
		err = os.Rename(from, to)
	case "delete":
		err = os.Remove(pick())
	case "hardlink":
		from, to := pick(), m.fresh(t, "h")
		m.touch(to)
		err = os.Link(from, to)
	case "chmod":
		err = os.Chmod(pick(), os.FileMode(rapid.SampledFrom([]int{0o600, 0o644, 0o755, 0o4755}).Draw(t, "mode")))
	case "xattr":
		err = unix.Setxattr(pick(), "user.k", []byte(rapid.StringN(0, 10, -1).Draw(t, "xv")), 0)
		if err == unix.ENOTSUP {
			err = nil
		}
	case "touch":
		ts := time.Unix(rapid.Int64Range(0, 2e9).Draw(t, "ts"), 0)
		err = os.Chtimes(pick(), ts, ts)
	case "replace-type":
		p := pick()
		if err = os.Remove(p); err == nil {
			err = os.Mkdir(p, 0o755)
		}
	case "rename-over":
		from, to := pick(), pick()
		err = os.Rename(from, to)
	case "replace-dir":
		// Put another directory (with its contents) in place of one: only
		// the parents see events.
		d := rapid.SampledFrom(m.dirs[1:]).Draw(t, "dir")
		other := m.fresh(t, "x")
		m.touch(d, other)
		if err = os.MkdirAll(filepath.Join(other, "inner"), 0o755); err == nil {
			os.WriteFile(filepath.Join(other, "inner", "f"), []byte("replacement"), 0o644)
			tmp := m.fresh(t, "old")
			m.touch(tmp)
			if err = os.Rename(d, tmp); err == nil {
				err = os.Rename(other, d)
			}
		}
	case "rmdir":
		d := rapid.SampledFrom(m.dirs[1:]).Draw(t, "dir")
		m.touch(d)
		err = os.RemoveAll(d)
	case "move-dir":
		d := rapid.SampledFrom(m.dirs[1:]).Draw(t, "dir")
		to := m.fresh(t, "m")
		m.touch(d, to)
		err = os.Rename(d, to)
	case "link-out":
		// ln ROOT/x OUTSIDE/o: x's link count and ctime change, and only
		// the inode tells (defect 4).
		out := filepath.Join(m.outside, fmt.Sprintf("o%d", m.n))
		m.n++
		if err = os.Link(pick(), out); err == nil {
			m.outLinks = append(m.outLinks, out)
		}
	case "link-in":
		// A file made outside, then linked in: its other name is
		// outside from the start.
		out := filepath.Join(m.outside, fmt.Sprintf("i%d", m.n))
		p := m.fresh(t, "k")
		m.touch(p)
		if err = os.WriteFile(out, []byte(rapid.StringN(0, 50, -1).Draw(t, "data")), 0o644); err == nil {
			if err = os.Link(out, p); err == nil {
				m.outLinks = append(m.outLinks, out)
			}
		}
	case "write-out":
		// A write through the name outside (defect 1).
		var f *os.File
		if f, err = os.OpenFile(rapid.SampledFrom(m.outLinks).Draw(t, "outlink"), os.O_APPEND|os.O_WRONLY, 0); err == nil {
			_, err = f.WriteString("+")
			f.Close()
		}
	case "chmod-out":
		err = os.Chmod(rapid.SampledFrom(m.outLinks).Draw(t, "outlink"), os.FileMode(rapid.SampledFrom([]int{0o600, 0o644, 0o755}).Draw(t, "mode")))
	case "unlink-out":
		i := rapid.IntRange(0, len(m.outLinks)-1).Draw(t, "outlink")
		err = os.Remove(m.outLinks[i])
		m.outLinks = append(m.outLinks[:i], m.outLinks[i+1:]...)
	case "exchange":
		// renameat2(RENAME_EXCHANGE): two entries (files, directories or
		// one of each) swap names at once.
		a, b := m.entry(t, "a"), m.entry(t, "b")
		if within(a, b) || within(b, a) {
			break
		}
		m.touch(a, b)
		err = unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
		if err == unix.EINVAL || err == unix.ENOSYS {
			err = nil // not on this filesystem
		}
	case "chown":
		p := m.entry(t, "owned")
		m.touch(p)
		id := rapid.SampledFrom([]int{0, 1, 65534}).Draw(t, "id")
		err = os.Lchown(p, id, rapid.SampledFrom([]int{0, 1, 65534}).Draw(t, "gid"))
		if os.IsPermission(err) {
			err = nil // not root
		}
	case "dir-times":
		d := rapid.SampledFrom(m.dirs).Draw(t, "dir")
		m.touch(d)
		ts := time.Unix(rapid.Int64Range(0, 2e9).Draw(t, "dts"), 0)
		err = os.Chtimes(d, ts, ts)
	case "flash":
		// Entries that exist only between two events: gone before the
		// watcher resolves them.
		p := m.fresh(t, "t")
		m.touch(p)
		kinds := 2
		if len(m.files) > 0 {
			kinds = 3
		}
		switch rapid.IntRange(0, kinds-1).Draw(t, "flash") {
		case 0:
			if err = os.WriteFile(p, []byte("brief"), 0o644); err == nil {
				err = os.Remove(p)
			}
		case 1:
			if err = os.MkdirAll(filepath.Join(p, "in"), 0o755); err == nil {
				os.WriteFile(filepath.Join(p, "in", "f"), []byte("brief"), 0o644)
				err = os.RemoveAll(p)
			}
		case 2:
			// Written, then renamed over an existing file (an editor's
			// save), so the name written to is gone.
			if err = os.WriteFile(p, []byte("saved"), 0o644); err == nil {
				err = os.Rename(p, pick())
			}
		}
	case "link-dance":
		// A file gets a second name and loses the first (a mail
		// delivery): one link again, under a new name.
		from, to := pick(), m.fresh(t, "n")
		m.touch(to)
		if err = os.Link(from, to); err == nil {
			err = os.Remove(from)
		}
	case "mmap":
		err = m.mapAndStore(t, pick())
	case "move-out":
		p := m.entry(t, "out")
		if p == m.root {
			break
		}
		m.touch(p)
		to := filepath.Join(m.outside, fmt.Sprintf("parked%d", m.n))
		m.n++
		if err = os.Rename(p, to); err == nil {
			m.parked = append(m.parked, to)
		}
	case "move-in":
		i := rapid.IntRange(0, len(m.parked)-1).Draw(t, "parked")
		to := m.fresh(t, "back")
		m.touch(to)
		err = os.Rename(m.parked[i], to)
		m.parked = append(m.parked[:i], m.parked[i+1:]...)
	}
	if err != nil {
		t.Logf("%s: %v (ignored)", op, err)
	}
}

// entry picks a file or a directory other than the root.
func (m *fsModel) entry(t *rapid.T, label string) string {
	all := append(append([]string{}, m.files...), m.dirs[1:]...)
	if len(all) == 0 {
		return m.root
	}
	return rapid.SampledFrom(all).Draw(t, label)
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// mapAndStore maps p shared and writable, stores through the mapping and
// keeps it, as a database does: no event says so. The pages are written
// back (msync) so that the next store faults and updates the file's
// times, which is how any scan that trusts times sees such a file change.
func (m *fsModel) mapAndStore(t *rapid.T, p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 || !fi.Mode().IsRegular() {
		return err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	m.maps = append(m.maps, mem)
	off := rapid.IntRange(0, len(mem)-1).Draw(t, "offset")
	mem[off] ^= 0x20
	return unix.Msync(mem, unix.MS_SYNC)
}

// TestParentAssistedEqualsFullScan is the engine's oracle: after random
// changes, a backup that trusts the parent snapshot and the stat cache
// must produce exactly the root tree that reading every file produces.
func TestParentAssistedEqualsFullScan(t *testing.T) {
	base := t.TempDir()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		r, db, done := newCase(rt, base, n)
		defer done()
		work := filepath.Join(base, fmt.Sprintf("case%d", n))
		src := filepath.Join(work, "src")
		os.MkdirAll(src, 0o755)
		defer os.RemoveAll(work)
		m := &fsModel{root: src}
		defer m.close()
		ctx := context.Background()
		host := fmt.Sprintf("h%d", n)
		rounds := rapid.IntRange(1, 4).Draw(rt, "rounds")
		for round := 0; round < rounds; round++ {
			for i, k := 0, rapid.IntRange(1, 12).Draw(rt, "ops"); i < k; i++ {
				m.mutate(rt)
			}
			// Let some changes age past the racy window so the stat cache is
			// trusted for them.
			if rapid.Bool().Draw(rt, "settle") {
				time.Sleep(2 * racy)
			}
			inc, err := backup.Run(ctx, r, db, backup.Options{Paths: []string{src}, Host: host, RacyWindow: racy})
			if err != nil {
				rt.Fatal(err)
			}
			full, err := backup.Run(ctx, r, nil, backup.Options{Paths: []string{src}, Host: host + "-full", ReadAll: true, RacyWindow: racy})
			if err != nil {
				rt.Fatal(err)
			}
			compareSubtrees(rt, r, inc.Snapshot, full.Snapshot, src, round)
			if round > 0 && inc.Snapshot.Scan.Mode != snapshot.ModeParentAssisted {
				rt.Fatalf("round %d ran in mode %s", round, inc.Snapshot.Scan.Mode)
			}
		}
	})
}

func TestNormalizeRoots(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a/b"), 0o755)
	os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "link"))
	got, err := backup.NormalizeRoots([]string{filepath.Join(dir, "a/b"), filepath.Join(dir, "a"), filepath.Join(dir, "link/b"), filepath.Join(dir, "a") + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != filepath.Join(dir, "a") {
		t.Fatalf("got %v", got)
	}
	// "/x/a-b" sorts between "/x/a" and "/x/a/b": still nested.
	os.MkdirAll(filepath.Join(dir, "a-b"), 0o755)
	got, err = backup.NormalizeRoots([]string{filepath.Join(dir, "a/b"), filepath.Join(dir, "a-b"), filepath.Join(dir, "a")})
	if err != nil || len(got) != 2 || got[0] != filepath.Join(dir, "a") || got[1] != filepath.Join(dir, "a-b") {
		t.Fatalf("nested roots: %v %v", got, err)
	}
	if _, err := backup.NormalizeRoots([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("missing path accepted")
	}
	if got, _ := backup.NormalizeRoots([]string{filepath.Join(dir, "link")}); got[0] != filepath.Join(dir, "link") {
		t.Fatalf("the last component must not be resolved: %v", got)
	}
}

// newCase gives one property-test case its own repository under base and a
// state database outside every backed-up tree (its journal files would
// change their parents' mtimes between the two backups compared); done
// removes both.
func newCase(rt *rapid.T, base string, n int) (r *repo.Repository, db *state.DB, done func()) {
	repoDir := filepath.Join(base, fmt.Sprintf("repo%d", n))
	r = newRepo(rt, repoDir)
	dbDir, err := os.MkdirTemp("", "tidemark-state-")
	if err != nil {
		rt.Fatal(err)
	}
	db, err = state.Open(filepath.Join(dbDir, "state.db"))
	if err != nil {
		os.RemoveAll(dbDir)
		rt.Fatal(err)
	}
	return r, db, func() {
		db.Close()
		os.RemoveAll(dbDir)
		os.RemoveAll(repoDir)
	}
}

// compareSubtrees fails unless the backup under test (inc) and the
// read-everything backup (full) hold the same tree for src, with the same
// totals. Only src is compared: the directories above it (such as /tmp) are
// shared with other processes and may change between the two backups.
func compareSubtrees(rt *rapid.T, r *repo.Repository, inc, full *snapshot.Snapshot, src string, round int) {
	ctx := context.Background()
	a, err := snapshot.FindPath(ctx, r, inc.Tree, src)
	if err != nil {
		rt.Fatal(err)
	}
	b, err := snapshot.FindPath(ctx, r, full.Tree, src)
	if err != nil {
		rt.Fatal(err)
	}
	if a.Subtree != b.Subtree || a.Agg != b.Agg {
		dumpDiff(rt, r, a.Subtree, b.Subtree)
		rt.Fatalf("round %d (%s: %s): tree %s != full scan tree %s", round, inc.Scan.Mode, inc.Scan.Reason, a.Subtree.Short(), b.Subtree.Short())
	}
	if inc.Totals.Files != full.Totals.Files || inc.Totals.Bytes != full.Totals.Bytes {
		rt.Fatalf("totals %+v != %+v", inc.Totals, full.Totals)
	}
}

// dumpDiff logs the nodes that differ between two trees.
func dumpDiff(t *rapid.T, r *repo.Repository, a, b blob.ID) {
	ctx := context.Background()
	nodes := map[string]string{}
	snapshot.Walk(ctx, r, a, "", func(p string, n *snapshot.Node) error {
		nodes[p] = fmt.Sprintf("%+v", *n)
		return nil
	})
	snapshot.Walk(ctx, r, b, "", func(p string, n *snapshot.Node) error {
		s := fmt.Sprintf("%+v", *n)
		if nodes[p] != s {
			t.Logf("%s:\n  parent-assisted %s\n  full            %s", p, nodes[p], s)
		}
		delete(nodes, p)
		return nil
	})
	for p, s := range nodes {
		t.Logf("%s only in parent-assisted: %s", p, s)
	}
}

// TestJournalScanEqualsFullScan: a scan that lists only the directories a
// change journal would report (the parents of everything touched) must
// produce exactly the tree a full scan produces, or decline with a reason
// (hard links) and fall back.
func TestJournalScanEqualsFullScan(t *testing.T) {
	base := t.TempDir()
	n := 0
	journals, fallbacks := 0, 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		r, db, done := newCase(rt, base, n)
		defer done()
		src := filepath.Join(base, fmt.Sprintf("case%d", n), "src")
		os.MkdirAll(src, 0o755)
		defer os.RemoveAll(filepath.Dir(src))
		m := &fsModel{root: src}
		defer m.close()
		ctx := context.Background()
		host := fmt.Sprintf("j%d", n)
		for i, k := 0, rapid.IntRange(0, 8).Draw(rt, "setup"); i < k; i++ {
			m.mutate(rt)
		}
		if _, err := backup.Run(ctx, r, db, backup.Options{Paths: []string{src}, Host: host, RacyWindow: racy}); err != nil {
			rt.Fatal(err)
		}
		m.takeTouched()
		for round, rounds := 0, rapid.IntRange(1, 4).Draw(rt, "rounds"); round < rounds; round++ {
			for i, k := 0, rapid.IntRange(1, 10).Draw(rt, "ops"); i < k; i++ {
				m.mutate(rt)
			}
			if rapid.Bool().Draw(rt, "settle") {
				time.Sleep(2 * racy)
			}
			inc, err := backup.Run(ctx, r, db, backup.Options{Paths: []string{src}, Host: host, RacyWindow: racy,
				Source: changes.ExternalList("the test", m.takeTouched())})
			if err != nil {
				rt.Fatal(err)
			}
			full, err := backup.Run(ctx, r, nil, backup.Options{Paths: []string{src}, Host: host + "-full", ReadAll: true, RacyWindow: racy})
			if err != nil {
				rt.Fatal(err)
			}
			if inc.Snapshot.Scan.Mode == snapshot.ModeExternal {
				journals++
			} else {
				fallbacks++
			}
			compareSubtrees(rt, r, inc.Snapshot, full.Snapshot, src, round)
		}
	})
	t.Logf("%d journal scans, %d fell back to a full scan", journals, fallbacks)
	if journals == 0 {
		t.Fatal("no journal scan ran")
	}
}
