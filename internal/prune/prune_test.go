package prune_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/prune"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/snapshot/snapshottest"
	"pgregory.net/rapid"
)

var password = []byte("pw")

const racy = 15 * time.Millisecond

func cheapKDF() (crypto.KDFParams, error) {
	p, err := crypto.DefaultKDFParams()
	p.Time, p.Memory = 1, 8*1024
	return p, err
}

// tb is what the helpers need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// world is a repository and a source tree to back up into it.
type world struct {
	t   tb
	be  backend.Backend
	src string
	// digests holds what each snapshot restores to, taken right after the
	// backup: prune must never change it.
	digests map[blob.ID]map[string][32]byte
}

func newWorld(t tb, dir string, be backend.Backend) *world {
	ctx := context.Background()
	if be == nil {
		l, err := local.Create(filepath.Join(dir, "repo"))
		if err != nil {
			t.Fatal(err)
		}
		be = l.WithoutSync()
	}
	r, err := repo.Init(ctx, be, password, repo.Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w := &world{t: t, be: be, src: filepath.Join(dir, "src"), digests: map[blob.ID]map[string][32]byte{}}
	if _, err := gentree.Generate(w.src, gentree.Spec{Files: 60, Seed: 1, LargeEvery: 15, LargeSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) open() *repo.Repository {
	r, err := repo.Open(context.Background(), w.be, password, repo.Options{})
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *world) backup(host string) blob.ID {
	r := w.open()
	defer r.Close()
	res, err := backup.Run(context.Background(), r, nil, backup.Options{Paths: []string{w.src}, Host: host, RacyWindow: racy})
	if err != nil {
		w.t.Fatal(err)
	}
	w.digests[res.Snapshot.ID] = contents(w.t, r, res.Snapshot.ID)
	return res.Snapshot.ID
}

func (w *world) forget(id blob.ID) {
	if err := w.be.Remove(context.Background(), backend.Handle{Type: backend.Snapshot, Name: id.String()}); err != nil {
		w.t.Fatal(err)
	}
	delete(w.digests, id)
}

func (w *world) prune(opt prune.Options) prune.Result {
	ctx := context.Background()
	r := w.open()
	defer r.Close()
	lk, err := r.LockMode(ctx, repo.LockPrune, "prune")
	if err != nil {
		w.t.Fatal(err)
	}
	defer lk.Unlock()
	opt.Holder = lk.Holder()
	res, err := prune.Run(ctx, r, opt)
	if err != nil {
		w.t.Fatal(err)
	}
	return res
}

// verify checks the repository, data included, and that every snapshot
// still restores to what it held when it was made.
func (w *world) verify() check.Summary {
	w.t.Helper()
	ctx := context.Background()
	r := w.open()
	defer r.Close()
	var probs []string
	sum, err := check.Run(ctx, r, check.Options{ReadData: true}, func(p check.Problem) {
		probs = append(probs, fmt.Sprintf("%s %s %s: %s", p.Kind, p.Object, p.Path, p.Err))
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if len(probs) > 0 {
		w.t.Fatalf("check found %d problems:\n%s", len(probs), strings.Join(probs, "\n"))
	}
	ids, err := snapshot.IDs(ctx, r)
	if err != nil {
		w.t.Fatal(err)
	}
	if got, want := len(ids), len(w.digests); got != want {
		w.t.Fatalf("%d snapshots in the repository, want %d", got, want)
	}
	for _, id := range ids {
		want, ok := w.digests[id]
		if !ok {
			w.t.Fatalf("unexpected snapshot %s", id.Short())
		}
		if got := contents(w.t, r, id); !maps.Equal(got, want) {
			w.t.Fatalf("snapshot %s changed: %d files, want %d", id.Short(), len(got), len(want))
		}
	}
	return sum
}

// contents reads every file of a snapshot and returns its digest by path.
func contents(t tb, r *repo.Repository, id blob.ID) map[string][32]byte {
	ctx := context.Background()
	sn, err := snapshot.Load(ctx, r, id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := snapshottest.ContentDigests(ctx, r, sn.Tree)
	if err != nil {
		t.Fatalf("read snapshot %s: %v", id.Short(), err)
	}
	return out
}

// TestPruneProperty runs random sequences of changes, backups, forgets and
// prunes with random options. After each prune the repository checks
// clean with all data read, every remaining snapshot holds what it held,
// and with no repack limit no unused data and no unindexed pack remain.
func TestPruneProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(t, t.TempDir(), nil)
		w.t = rt
		var snaps []blob.ID
		for step := range rapid.IntRange(4, 14).Draw(rt, "steps") {
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				if _, err := gentree.Modify(w.src, rapid.IntRange(1, 20).Draw(rt, "changes"), uint64(step)+rapid.Uint64().Draw(rt, "seed")); err != nil {
					rt.Fatal(err)
				}
				snaps = append(snaps, w.backup("h"))
			case 1:
				snaps = append(snaps, w.backup("h"))
			case 2:
				if len(snaps) > 0 {
					i := rapid.IntRange(0, len(snaps)-1).Draw(rt, "forget")
					w.forget(snaps[i])
					snaps = slices.Delete(snaps, i, i+1)
				}
			case 3:
				opt := prune.Options{
					MaxUnused:   rapid.SampledFrom([]float64{0, 0.05, 0.5, 1}).Draw(rt, "maxUnused"),
					RepackSmall: rapid.Bool().Draw(rt, "repackSmall"),
				}
				if rapid.Bool().Draw(rt, "limit") {
					opt.MaxRepackBytes = 1 << 20
				}
				res := w.prune(opt)
				sum := w.verify()
				if sum.UnreferencedPacks != 0 {
					rt.Fatalf("%d unindexed packs left after prune", sum.UnreferencedPacks)
				}
				if opt.MaxUnused == 0 && opt.MaxRepackBytes == 0 && res.RemainingUnused != 0 {
					rt.Fatalf("prune with --max-unused 0%% left %d unused bytes", res.RemainingUnused)
				}
			}
		}
		res := w.prune(prune.Options{})
		w.verify()
		if res.RemainingUnused != 0 {
			rt.Fatalf("final prune left %d unused bytes", res.RemainingUnused)
		}
	})
}

// TestPruneFreesForgottenData checks the figures of a plain prune.
func TestPruneFreesForgottenData(t *testing.T) {
	w := newWorld(t, t.TempDir(), nil)
	first := w.backup("h")
	if _, err := gentree.Modify(w.src, 200, 7); err != nil {
		t.Fatal(err)
	}
	w.backup("h")
	dry := w.prune(prune.Options{DryRun: true})
	if dry.DeletePacks != 0 || dry.UnusedBytes != 0 {
		t.Fatalf("dry run before forgetting: %+v", dry)
	}
	w.forget(first)
	dry = w.prune(prune.Options{DryRun: true})
	if dry.UnusedBytes == 0 || dry.Deleted != 0 {
		t.Fatalf("dry run after forgetting: %+v", dry)
	}
	w.verify()
	res := w.prune(prune.Options{})
	if res.Deleted == 0 || res.FreedBytes == 0 || res.RemainingUnused != 0 {
		t.Fatalf("prune: %+v", res)
	}
	w.verify()
	again := w.prune(prune.Options{})
	if again.Deleted != 0 || again.UnusedBytes != 0 || again.RepackPacks != 0 {
		t.Fatalf("second prune still had work: %+v", again)
	}
}

// gate is a backend that holds the first Save of one file type until
// released, so a test can stop a client at a chosen point.
type gate struct {
	backend.Backend
	typ     backend.FileType
	once    sync.Once
	hit     chan struct{}
	release chan struct{}
}

func newGate(be backend.Backend, t backend.FileType) *gate {
	return &gate{Backend: be, typ: t, hit: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if h.Type == g.typ {
		first := false
		g.once.Do(func() { first = true })
		if first {
			close(g.hit)
			<-g.release
		}
	}
	return g.Backend.Save(ctx, h, data)
}

// outcome is how a backup run in the background ended.
type outcome struct {
	res *backup.Result
	err error
}

// gatedBackup opens a repository handle (reading the index while snapshot
// old still exists), forgets old, and starts a backup through a gate at
// file type at. It returns once the backup is held at the gate.
func (w *world) gatedBackup(t *testing.T, at backend.FileType, old blob.ID) (*gate, <-chan outcome) {
	ctx := context.Background()
	g := newGate(w.be, at)
	br, err := repo.Open(ctx, g, password, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.forget(old)
	done := make(chan outcome, 1)
	go func() {
		defer br.Close()
		res, err := backup.Run(ctx, br, nil, backup.Options{Paths: []string{w.src}, Host: "h", RacyWindow: racy})
		done <- outcome{res, err}
	}()
	<-g.hit
	return g, done
}

// TestPruneConcurrentBackup runs a backup that is stopped at a chosen
// point while a prune starts, then lets it finish. The prune must wait
// for it and keep everything it uses:
//   - "dedup": the backup read the index before the prune and reuses
//     blobs only a forgotten snapshot used (it writes no new data); it is
//     stopped before saving its snapshot.
//   - "unindexed": the backup has stored a pack but not yet its index file
//     when the prune lists the packs.
func TestPruneConcurrentBackup(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   backend.FileType
	}{
		{"dedup", backend.Snapshot},
		{"unindexed", backend.Index},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := newWorld(t, dir, nil)
			old := w.backup("h")
			if tc.name == "unindexed" {
				if _, err := gentree.Modify(w.src, 30, 3); err != nil {
					t.Fatal(err)
				}
			}
			g, done := w.gatedBackup(t, tc.at, old)

			waiting := make(chan struct{})
			var once sync.Once
			pruned := make(chan prune.Result, 1)
			go func() {
				pruned <- w.prune(prune.Options{Poll: 10 * time.Millisecond, MaxWait: time.Minute,
					Log: func(f string, args ...any) {
						if strings.HasPrefix(f, "waiting") {
							once.Do(func() { close(waiting) })
						}
					}})
			}()
			select {
			case <-waiting:
			case res := <-pruned:
				t.Fatalf("prune finished without waiting for the backup: %+v", res)
			}
			close(g.release)
			out := <-done
			if out.err != nil {
				t.Fatal(out.err)
			}
			res := <-pruned
			t.Logf("prune: %+v", res)
			w.digests[out.res.Snapshot.ID] = contents(t, w.open(), out.res.Snapshot.ID)
			if tc.name == "dedup" && res.Resurrected == 0 {
				t.Fatalf("prune did not keep the packs the backup reused: %+v", res)
			}
			w.verify()
			// The next prune finds nothing to delete that is in use.
			w.prune(prune.Options{})
			w.verify()
		})
	}
}

// TestPruneDefersWhileClientsRun: with a client running and no time to
// wait, nothing is deleted; the next prune, after the client is gone,
// deletes it.
func TestPruneDefersWhileClientsRun(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, t.TempDir(), nil)
	old := w.backup("h")
	if _, err := gentree.Modify(w.src, 200, 9); err != nil {
		t.Fatal(err)
	}
	w.backup("h")
	w.forget(old)
	r := w.open()
	lk, err := r.Lock(ctx, false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	res := w.prune(prune.Options{MaxWait: 0})
	if len(res.Deferred) == 0 || res.Deleted != 0 {
		t.Fatalf("prune with a running client: %+v", res)
	}
	sum := w.verify()
	if sum.UnreferencedPacks == 0 {
		t.Fatal("deferred packs should be unindexed now")
	}
	if err := lk.Unlock(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	res = w.prune(prune.Options{})
	if res.Deleted == 0 || len(res.Deferred) != 0 {
		t.Fatalf("prune after the client finished: %+v", res)
	}
	if sum := w.verify(); sum.UnreferencedPacks != 0 {
		t.Fatalf("%d unindexed packs left", sum.UnreferencedPacks)
	}
}

// TestPruneRefusesUnknownUse: a snapshot whose tree is gone stops the
// prune before it changes anything.
func TestPruneRefusesUnknownUse(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, t.TempDir(), nil)
	w.backup("h")
	var trees []string
	if err := w.be.List(ctx, backend.Tree, func(n string, _ int64) error { trees = append(trees, n); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, n := range trees {
		if err := w.be.Remove(ctx, backend.Handle{Type: backend.Tree, Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	r := w.open()
	defer r.Close()
	lk, err := r.LockMode(ctx, repo.LockPrune, "prune")
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock()
	before := listAll(t, w.be)
	_, err = prune.Run(ctx, r, prune.Options{Holder: lk.Holder()})
	if err == nil || !strings.Contains(err.Error(), "tree") {
		t.Fatalf("prune of a repository with lost trees: %v", err)
	}
	if after := listAll(t, w.be); !slices.Equal(before, after) {
		t.Fatalf("prune changed the repository before failing:\nbefore %v\nafter  %v", before, after)
	}
}

func listAll(t *testing.T, be backend.Backend) []string {
	var out []string
	for _, ft := range []backend.FileType{backend.Data, backend.Tree, backend.Index, backend.Snapshot} {
		if err := be.List(context.Background(), ft, func(n string, _ int64) error {
			out = append(out, fmt.Sprint(ft, "/", n))
			return nil
		}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

// TestPruneKilledWhileBackupReuses: a prune stops (as if killed) while it
// waits for a backup that read the index before the prune replaced it and
// reuses data only a forgotten snapshot used. The doomed index file the
// prune left keeps that data readable: the backup's snapshot restores and
// the repository checks clean before any further prune; the next prune
// keeps the data and removes the doomed file.
func TestPruneKilledWhileBackupReuses(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, t.TempDir(), nil)
	old := w.backup("h")
	g, done := w.gatedBackup(t, backend.Snapshot, old)

	pctx, kill := context.WithCancel(ctx)
	r := w.open()
	lk, err := r.LockMode(ctx, repo.LockPrune, "prune")
	if err != nil {
		t.Fatal(err)
	}
	_, err = prune.Run(pctx, r, prune.Options{Holder: lk.Holder(), Poll: 10 * time.Millisecond, MaxWait: time.Minute,
		Log: func(f string, _ ...any) {
			if strings.HasPrefix(f, "waiting") {
				kill()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("prune stopped while waiting: %v", err)
	}
	// A killed process leaves its lock; this one is removed as unlock
	// would remove a stale one.
	lk.Unlock()
	r.Close()

	close(g.release)
	out := <-done
	if out.err != nil {
		t.Fatal(out.err)
	}
	w.digests[out.res.Snapshot.ID] = contents(t, w.open(), out.res.Snapshot.ID)
	w.verify()
	res := w.prune(prune.Options{})
	if res.Reindexed == 0 {
		t.Fatalf("the next prune did not index the reused packs again: %+v", res)
	}
	w.verify()
	for _, n := range listAll(t, w.be) {
		if strings.HasPrefix(n, "index/") {
			plain, err := w.open().LoadUnpackedRaw(ctx, backend.Index, strings.TrimPrefix(n, "index/"))
			if err != nil {
				t.Fatal(err)
			}
			if ips, err := repo.DecodeIndex(plain); err != nil || (len(ips) > 0 && ips[0].Doomed) {
				t.Fatalf("index file %s after a completed prune: doomed or unreadable (%v)", n, err)
			}
		}
	}
}

// afterReplace is a backend that runs fn once, right before the first
// listing of snapshots after an index file was removed: for a prune, that
// is when it rechecks what clients added while it replaced the index.
type afterReplace struct {
	backend.Backend
	replaced atomic.Bool
	once     sync.Once
	fn       func()
}

func (b *afterReplace) Remove(ctx context.Context, h backend.Handle) error {
	if h.Type == backend.Index {
		b.replaced.Store(true)
	}
	return b.Backend.Remove(ctx, h)
}

func (b *afterReplace) List(ctx context.Context, t backend.FileType, fn func(string, int64) error) error {
	if t == backend.Snapshot && b.fn != nil && b.replaced.Load() {
		b.once.Do(b.fn)
	}
	return b.Backend.List(ctx, t, fn)
}

// TestPruneReadsTreesOfIndexFilesWrittenMeanwhile: the prune's repository
// handle read the index when it was opened, but the prune goes on to read
// snapshots whose trees are in index files written later. It must find
// those trees (and keep the packs holding them) in each window:
//   - "before-run": a backup completes between the prune's open and its
//     start; the prune lists its snapshot first thing.
//   - "older-client": a backup that locked before the prune stores its
//     packs and index file after the prune's open, and its snapshot after
//     the prune listed the snapshots (the prune then reads that index file,
//     finds its packs unused, dooms and waits for it, and finds the
//     snapshot when it rechecks).
//   - "newer-client": a backup that started after the index was replaced
//     completes just as the prune rechecks.
func TestPruneReadsTreesOfIndexFilesWrittenMeanwhile(t *testing.T) {
	for _, name := range []string{"before-run", "older-client", "newer-client"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, t.TempDir(), nil)
			old := w.backup("h")
			if _, err := gentree.Modify(w.src, 30, 5); err != nil {
				t.Fatal(err)
			}
			modify := func(seed uint64) {
				if _, err := gentree.Modify(w.src, 30, seed); err != nil {
					t.Fatal(err)
				}
			}
			hook := &afterReplace{Backend: w.be}
			r, err := repo.Open(ctx, hook, password, repo.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			lk, err := r.LockMode(ctx, repo.LockPrune, "prune")
			if err != nil {
				t.Fatal(err)
			}
			opt := prune.Options{Holder: lk.Holder(), Poll: 10 * time.Millisecond, MaxWait: time.Minute}

			var done <-chan outcome
			switch name {
			case "before-run":
				w.backup("h")
				w.forget(old)
			case "older-client":
				var g *gate
				g, done = w.gatedBackup(t, backend.Snapshot, old)
				var once sync.Once
				opt.Log = func(f string, _ ...any) {
					if strings.HasPrefix(f, "waiting") {
						once.Do(func() { close(g.release) })
					}
				}
			case "newer-client":
				w.backup("h")
				w.forget(old)
				hook.fn = func() {
					modify(7)
					w.backup("h2")
				}
			}
			res, err := prune.Run(ctx, r, opt)
			if uerr := lk.Unlock(); uerr != nil {
				t.Fatal(uerr)
			}
			if err != nil {
				t.Fatalf("prune: %v", err)
			}
			t.Logf("prune: %+v", res)
			if res.Deleted == 0 {
				t.Fatalf("prune deleted nothing: %+v", res)
			}
			if done != nil {
				out := <-done
				if out.err != nil {
					t.Fatal(out.err)
				}
				w.digests[out.res.Snapshot.ID] = contents(t, w.open(), out.res.Snapshot.ID)
				if res.Resurrected == 0 {
					t.Fatalf("prune did not keep the packs of the backup it waited for: %+v", res)
				}
			}
			if name == "newer-client" && len(w.digests) != 2 {
				t.Fatalf("the backup during the recheck did not run: %d snapshots", len(w.digests))
			}
			w.verify()
			w.prune(prune.Options{})
			w.verify()
		})
	}
}
