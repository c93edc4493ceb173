package app_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/prune"
	"github.com/tidemark/tidemark/internal/repair"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/retention"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/verify"
)

// options returns the options of a new local repository in dir.
func options(dir string) app.Options {
	return app.Options{
		Repository: filepath.Join(dir, "repo"),
		CacheDir:   filepath.Join(dir, "cache"),
		Password:   func() ([]byte, error) { return []byte("secret"), nil },
		KDF: func() (crypto.KDFParams, error) {
			p, err := crypto.DefaultKDFParams()
			p.Time, p.Memory, p.Threads = 1, 8*1024, 1
			return p, err
		},
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// recorder collects events; backups send them from other goroutines.
type recorder struct {
	mu     sync.Mutex
	events []app.Event
}

func (r *recorder) add(e app.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) all() []app.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]app.Event(nil), r.events...)
}

// TestOperations drives one repository through the library calls a front
// end makes, checking their typed results and events.
func TestOperations(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, filepath.Join(src, "a.txt"), "alpha")
	write(t, filepath.Join(src, "sub", "b.txt"), "bravo")
	opt := options(dir)

	if _, err := app.Open(ctx, opt); !errors.Is(err, app.ErrNoRepository) {
		t.Fatalf("open before init: %v", err)
	}
	r, err := app.Init(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var rec recorder
	bopt := app.BackupOptions{Paths: []string{src}, NoJournal: true, Events: rec.add, ProgressInterval: time.Millisecond}
	first, err := r.Backup(ctx, bopt)
	if err != nil {
		t.Fatal(err)
	}
	if first.Scan.Mode != snapshot.ModeFull || first.Totals.Files != 2 || first.Totals.Bytes != 10 || first.Partial() {
		t.Fatalf("first backup: %+v %+v", first.Scan, first.Totals)
	}
	evs := rec.all()
	started, ok := evs[0].(app.ScanStarted)
	if !ok || started.Mode != snapshot.ModeFull || started.Parent != nil {
		t.Fatalf("first event %#v, want ScanStarted of a full scan", evs[0])
	}
	last, ok := evs[len(evs)-1].(app.Progress)
	if !ok || !last.Done || last.Files != 2 || last.BytesRead != 10 {
		t.Fatalf("last event %#v, want the final Progress", evs[len(evs)-1])
	}

	write(t, filepath.Join(src, "sub", "b.txt"), "bravo, changed")
	write(t, filepath.Join(src, "c.txt"), "charlie")
	rec = recorder{}
	second, err := r.Backup(ctx, bopt)
	if err != nil {
		t.Fatal(err)
	}
	if second.Parent == nil || *second.Parent != first.ID || second.Scan.Mode != snapshot.ModeParentAssisted {
		t.Fatalf("second backup: parent %v, scan %+v", second.Parent, second.Scan)
	}
	if s := rec.all()[0].(app.ScanStarted); s.EstFiles != 2 || s.EstBytes != 10 || *s.Parent != first.ID {
		t.Fatalf("second ScanStarted %+v: want the parent's totals as estimates", s)
	}

	var changes []string
	// Directories above src (/tmp...) change on their own; look below it.
	below := strings.TrimPrefix(src, "/") + "/"
	diff, err := r.Diff(ctx, app.DiffOptions{From: first.ID.String(), To: "latest"}, func(c app.Change) {
		if strings.HasPrefix(c.Path, below) {
			changes = append(changes, c.Kind+" "+c.Path)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"+ " + strings.TrimPrefix(filepath.Join(src, "c.txt"), "/"), "M " + strings.TrimPrefix(filepath.Join(src, "sub", "b.txt"), "/")}
	if strings.Join(changes, "|") != strings.Join(want, "|") || diff.FromTotals.Files != 2 || diff.ToTotals.Files != 3 {
		t.Fatalf("diff %q (%+v), want %q", changes, diff, want)
	}

	var listed []string
	if err := r.Ls(ctx, app.LsOptions{Snapshot: "latest", Path: src}, func(p string, n *snapshot.Node) error {
		listed = append(listed, filepath.Base(p)+":"+n.Type.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(listed, ",") != "a.txt:file,c.txt:file,sub:dir" {
		t.Fatalf("ls: %q", listed)
	}

	target := filepath.Join(dir, "restore")
	res, err := r.Restore(ctx, app.RestoreOptions{Snapshot: "latest", Options: restore.Options{Target: target}})
	if err != nil || res.Files != 3 || len(res.Errors) != 0 || res.Snapshot != second.ID {
		t.Fatalf("restore: %+v %v", res, err)
	}
	if got, _ := os.ReadFile(filepath.Join(target, src, "sub", "b.txt")); string(got) != "bravo, changed" {
		t.Fatalf("restored content %q", got)
	}

	hist, err := r.History(ctx, 10)
	if err != nil || len(hist) != 2 || hist[0].Snapshot != second.ID.String() {
		t.Fatalf("history %+v %v", hist, err)
	}
	stats, err := r.Stats(ctx, snapshot.Filter{}, nil)
	if err != nil || stats.Snapshots != 2 || stats.DataBlobs == 0 || stats.RestoreFiles != 5 || stats.RestoreBytes != 10+26 {
		t.Fatalf("stats %+v %v", stats, err)
	}

	chk, err := r.Check(ctx, check.Options{ReadData: true}, nil)
	if err != nil || len(chk.Problems) != 0 || chk.Summary.Snapshots != 2 {
		t.Fatalf("check %+v %v", chk, err)
	}
	vr, err := r.Verify(ctx, verify.Options{Bytes: verify.Budget{Amount: 1 << 30, Period: 24 * time.Hour},
		Requests: verify.Budget{Amount: 100, Period: 24 * time.Hour}}, nil)
	if err != nil || !vr.OK() || len(vr.Checked) == 0 || vr.BudgetRequests != 100 || vr.RequestsPeriod != "day" {
		t.Fatalf("verify %+v %v", vr, err)
	}

	if err := (app.ForgetOptions{}).Validate(); err == nil {
		t.Fatal("an empty retention policy must be refused")
	}
	if err := (app.ForgetOptions{Policy: retention.Policy{Last: 1}, GroupBy: "colour"}).Validate(); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("unknown --group-by field: %v", err)
	}
	rec = recorder{}
	fr, err := r.Forget(ctx, app.ForgetOptions{Policy: retention.Policy{Last: 1}, GroupBy: "host,paths",
		Prune: &prune.Options{MaxUnused: 0, MaxWait: time.Minute, Poll: 10 * time.Millisecond}}, rec.add)
	if err != nil {
		t.Fatal(err)
	}
	if fr.Forgotten != 1 || fr.Removed != 1 || len(fr.Verdicts) != 2 || fr.Prune == nil {
		t.Fatalf("forget: %+v", fr)
	}
	logged := false
	for _, e := range rec.all() {
		if _, ok := e.(app.Log); ok {
			logged = true
		}
	}
	if !logged {
		t.Fatal("the prune after forget sent no Log events")
	}
	groups, err := r.Snapshots(ctx, app.SnapshotsOptions{}, nil)
	if err != nil || len(groups) != 1 || len(groups[0].Snapshots) != 1 || groups[0].Snapshots[0].ID != second.ID {
		t.Fatalf("snapshots after forget: %+v %v", groups, err)
	}
}

// TestRepairAndCacheRebuild: repair index reopens the repository under the
// same handle, and a cache rebuild recreates the cache from the
// repository, after which the next backup says why it reads every file.
func TestRepairAndCacheRebuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, filepath.Join(src, "f"), "data")
	opt := options(dir)
	r, err := app.Init(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Backup(ctx, app.BackupOptions{Paths: []string{src}, NoJournal: true}); err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadDir(filepath.Join(dir, "repo", "index"))
	if err != nil || len(idx) == 0 {
		t.Fatalf("index files: %v %v", idx, err)
	}
	for _, e := range idx {
		os.Remove(filepath.Join(dir, "repo", "index", e.Name()))
	}
	rep, err := r.RepairIndex(ctx, nil)
	if err != nil || rep.Index.Blobs == 0 || rep.Snapshots.Damaged != 0 {
		t.Fatalf("repair index: %+v %v", rep, err)
	}
	// The handle works on after the reopen.
	if _, err := r.RepairSnapshots(ctx, repair.SnapshotsOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	r.Close()

	cr, err := app.RebuildCache(ctx, opt, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Snapshots != 1 || cr.History != 1 || cr.Blobs == 0 || cr.TreePacks == 0 || cr.Dir != filepath.Join(opt.CacheDir, idOf(t, ctx, opt)) {
		t.Fatalf("cache rebuild: %+v", cr)
	}
	r, err = app.Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := r.Backup(ctx, app.BackupOptions{Paths: []string{src}, NoJournal: true})
	if err != nil || b.Scan.Mode != snapshot.ModeFull || !strings.Contains(b.Scan.Reason, "cache was rebuilt") {
		t.Fatalf("backup after rebuild: %+v %v", b, err)
	}
	noCache := opt
	noCache.NoCache = true
	if _, err := app.RebuildCache(ctx, noCache, "", nil); err == nil || !strings.Contains(err.Error(), "--no-cache") {
		t.Fatalf("cache rebuild with NoCache: %v", err)
	}
}

func idOf(t *testing.T, ctx context.Context, opt app.Options) string {
	r, err := app.Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.ID()
}

// TestSeveralRepositories: a long-running process holds two repositories
// open and backs up into both at once; events reach each call's own
// handler.
func TestSeveralRepositories(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	var repos [2]*app.Repo
	var srcs [2]string
	for i := range repos {
		dir := filepath.Join(base, string(rune('a'+i)))
		srcs[i] = filepath.Join(dir, "src")
		write(t, filepath.Join(srcs[i], "file"), strings.Repeat("x", 1000*(i+1)))
		r, err := app.Init(ctx, options(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		repos[i] = r
	}
	if repos[0].ID() == repos[1].ID() {
		t.Fatal("two repositories share an ID")
	}
	var wg sync.WaitGroup
	var recs [2]recorder
	errs := make([]error, 2)
	results := make([]*app.BackupResult, 2)
	for i := range repos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = repos[i].Backup(ctx, app.BackupOptions{Paths: []string{srcs[i]}, NoJournal: true, Events: recs[i].add})
		}()
	}
	wg.Wait()
	for i := range repos {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i].Totals.Bytes != uint64(1000*(i+1)) {
			t.Fatalf("repository %d: totals %+v", i, results[i].Totals)
		}
		last := recs[i].all()
		if p, ok := last[len(last)-1].(app.Progress); !ok || p.BytesRead != uint64(1000*(i+1)) {
			t.Fatalf("repository %d: events %#v", i, last)
		}
	}
}

// TestCancelledBackup: a cancelled context stops a backup with the
// context's error and saves no snapshot.
func TestCancelledBackup(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for i := range 50 {
		write(t, filepath.Join(src, string(rune('a'+i%26)), string(rune('a'+i/26))), string(bytes.Repeat([]byte{byte(i)}, 100000)))
	}
	r, err := app.Init(context.Background(), options(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Backup(ctx, app.BackupOptions{Paths: []string{src}, NoJournal: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled backup: %v", err)
	}
	groups, err := r.Snapshots(context.Background(), app.SnapshotsOptions{}, nil)
	if err != nil || len(groups) != 0 {
		t.Fatalf("snapshots after a cancelled backup: %+v %v", groups, err)
	}
}
