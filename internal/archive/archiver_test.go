package archive_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

func testRepo(t *testing.T) *repo.Repository {
	t.Helper()
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, []byte("pw"), repo.Options{KDF: func() (crypto.KDFParams, error) {
		p, err := crypto.DefaultKDFParams()
		p.Time, p.Memory = 1, 8*1024
		return p, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// racy is short so tests need not wait a second for ctimes to settle.
const racy = 20 * time.Millisecond

func settle() { time.Sleep(2 * racy) }

// run backs src up with the stat cache of db and returns the snapshot.
func run(t *testing.T, r *repo.Repository, db *state.DB, src string, excludes ...string) *snapshot.Snapshot {
	t.Helper()
	res, err := backup.Run(context.Background(), r, db, backup.Options{Paths: []string{src}, Excludes: excludes, Host: "test", RacyWindow: racy})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Errors {
		t.Logf("backup reported %s: %s", e.Path, e.Err)
	}
	return res.Snapshot
}

func TestUnchangedTreeSameIDAndNothingRead(t *testing.T) {
	r := testRepo(t)
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Created up front: making it later would change the mtime of the
	// directory above src, which is part of the snapshot.
	db2Dir := t.TempDir()
	src := t.TempDir()
	for i, name := range []string{"a/one", "a/two", "b/c/three", "top"} {
		write(t, filepath.Join(src, name), string(rune('x'+i))+"content")
	}
	settle()
	s1 := run(t, r, db, src)
	if s1.Scan.Mode != snapshot.ModeFull || s1.Summary.FilesNew != 4 {
		t.Fatalf("first backup: mode %s, %+v", s1.Scan.Mode, s1.Summary)
	}
	s2 := run(t, r, db, src)
	// Compare the trees of src: /tmp above it is shared with other tests.
	sub := func(sn *snapshot.Snapshot) string {
		n, err := snapshot.FindPath(context.Background(), r, sn.Tree, src)
		if err != nil {
			t.Fatal(err)
		}
		return n.Subtree.String()
	}
	if sub(s2) != sub(s1) {
		t.Fatal("unchanged tree got a different root ID")
	}
	if s2.Scan.Mode != snapshot.ModeParentAssisted || s2.Summary.BytesRead != 0 || s2.Summary.FilesUnchanged != 4 {
		t.Fatalf("second backup: mode %s, %+v", s2.Scan.Mode, s2.Summary)
	}
	if s2.Totals != s1.Totals || s2.Totals.Files != 4 {
		t.Fatalf("totals %+v vs %+v", s2.Totals, s1.Totals)
	}

	// Same size, same mtime, different content: the ctime gives it away.
	p := filepath.Join(src, "a/one")
	fi, _ := os.Stat(p)
	write(t, p, "ycontent")
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	settle()
	s3 := run(t, r, db, src)
	if sub(s3) == sub(s2) || s3.Summary.FilesChanged != 1 {
		t.Fatalf("same-size same-mtime change missed: %+v", s3.Summary)
	}
	// A fresh state database (deleted cache) gives the same tree with a
	// full read.
	db2, err := state.Open(filepath.Join(db2Dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	s4 := run(t, r, db2, src)
	if sub(s4) != sub(s3) || s4.Scan.Mode != snapshot.ModeFull || s4.Summary.FilesUnchanged != 0 {
		t.Fatalf("rebuild: tree equal %v, mode %s, %+v", sub(s4) == sub(s3), s4.Scan.Mode, s4.Summary)
	}
}

func TestHardLinksExcludesAndTypes(t *testing.T) {
	r := testRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "a/file"), "linked")
	if err := os.Link(filepath.Join(src, "a/file"), filepath.Join(src, "z-link")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "skip.tmp"), "excluded")
	write(t, filepath.Join(src, "cache/x"), "excluded dir")
	if err := os.Symlink("a/file", filepath.Join(src, "sym")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ex, _ := scan.NewExcluder([]string{"*.tmp", src + "/cache"})
	res, err := archive.Run(ctx, r, archive.Options{Roots: []string{src}, Excludes: ex})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if res.Totals.Files != 2 || res.Totals.Other != 1 {
		t.Fatalf("totals %+v", res.Totals)
	}
	rel := src[1:]
	link, err := snapshot.FindPath(ctx, r, res.Tree, rel+"/z-link")
	if err != nil {
		t.Fatal(err)
	}
	if link.HardLink != rel+"/a/file" || !link.MultiLink {
		t.Fatalf("hard link recorded as %q", link.HardLink)
	}
	first, _ := snapshot.FindPath(ctx, r, res.Tree, rel+"/a/file")
	if first.HardLink != "" || !first.MultiLink {
		t.Fatalf("first link: %+v", first)
	}
	for _, gone := range []string{"/skip.tmp", "/cache"} {
		if _, err := snapshot.FindPath(ctx, r, res.Tree, rel+gone); err == nil {
			t.Errorf("%s not excluded", gone)
		}
	}
	sym, _ := snapshot.FindPath(ctx, r, res.Tree, rel+"/sym")
	if sym.Type != snapshot.Symlink || sym.Target != "a/file" {
		t.Fatalf("symlink %+v", sym)
	}
}

func TestUnreadableFileReported(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	r := testRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "secret"), "x")
	os.Chmod(filepath.Join(src, "secret"), 0)
	res, err := archive.Run(context.Background(), r, archive.Options{Roots: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.Errors != 1 || len(res.Errors) != 1 {
		t.Fatalf("errors: %+v", res.Errors)
	}
}

func TestRacyCtimeNotTrusted(t *testing.T) {
	r := testRepo(t)
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), "aaaa")
	res, err := backup.Run(context.Background(), r, db, backup.Options{Paths: []string{src}, Host: "test"})
	if err != nil || res.Snapshot.Summary.FilesNew != 1 {
		t.Fatal(err)
	}
	// Written just now: its ctime is too recent to be trusted, so the next
	// backup reads it again even though nothing changed.
	res, err = backup.Run(context.Background(), r, db, backup.Options{Paths: []string{src}, Host: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Snapshot.Summary; s.FilesChanged != 1 || s.BytesRead != 4 {
		t.Fatalf("racy file not re-read: %+v", s)
	}
}
