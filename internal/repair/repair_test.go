package repair_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/repair"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/snapshot/snapshottest"
)

var password = []byte("pw")

func cheapKDF() (crypto.KDFParams, error) {
	p, err := crypto.DefaultKDFParams()
	p.Time, p.Memory = 1, 8*1024
	return p, err
}

// fixture is a repository with two snapshots of a tree in which each
// large file has a pack of its own (one backup per large file).
type fixture struct {
	t     *testing.T
	be    backend.Backend
	src   string
	snaps []blob.ID
}

func newFixture(t *testing.T) *fixture {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{t: t, be: l.WithoutSync(), src: filepath.Join(dir, "src")}
	r, err := repo.Init(ctx, fx.be, password, repo.Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := gentree.Generate(fx.src, gentree.Spec{Files: 80, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		name := filepath.Join(fx.src, fmt.Sprintf("dir%d", i), "large.bin")
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, gentree.RandomBytes(3<<20, uint64(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		fx.backup()
	}
	return fx
}

func (fx *fixture) open() *repo.Repository {
	r, err := repo.Open(context.Background(), fx.be, password, repo.Options{})
	if err != nil {
		fx.t.Fatal(err)
	}
	return r
}

func (fx *fixture) backup() {
	r := fx.open()
	defer r.Close()
	res, err := backup.Run(context.Background(), r, nil, backup.Options{Paths: []string{fx.src}, Host: "h", RacyWindow: 15 * time.Millisecond})
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.snaps = append(fx.snaps, res.Snapshot.ID)
}

// files returns every file path of a snapshot with the packs holding its
// content, and every directory path with its tree's pack.
func (fx *fixture) files(r *repo.Repository, id blob.ID) (files, dirs map[string][]blob.ID) {
	ctx := context.Background()
	sn, err := snapshot.Load(ctx, r, id)
	if err != nil {
		fx.t.Fatal(err)
	}
	files, dirs = map[string][]blob.ID{}, map[string][]blob.ID{}
	loc, _ := r.Index().Lookup(sn.Tree)
	dirs[""] = []blob.ID{loc.Pack}
	err = snapshot.Walk(ctx, r, sn.Tree, "", func(p string, n *snapshot.Node) error {
		switch n.Type {
		case snapshot.File:
			for _, c := range n.Content {
				l, ok := r.Index().Lookup(c)
				if !ok {
					return fmt.Errorf("%s: blob %s not indexed", p, c.Short())
				}
				files[p] = append(files[p], l.Pack)
			}
		case snapshot.Dir:
			l, _ := r.Index().Lookup(n.Subtree)
			dirs[p] = []blob.ID{l.Pack}
		}
		return nil
	})
	if err != nil {
		fx.t.Fatal(err)
	}
	return files, dirs
}

// digest reads a snapshot's files: path to content hash.
func digest(t *testing.T, r *repo.Repository, id blob.ID) map[string][32]byte {
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

func (fx *fixture) check() {
	fx.t.Helper()
	r := fx.open()
	defer r.Close()
	var probs []string
	if _, err := check.Run(context.Background(), r, check.Options{ReadData: true}, func(p check.Problem) {
		probs = append(probs, fmt.Sprintf("%s %s %s: %s", p.Kind, p.Object, p.Path, p.Err))
	}); err != nil {
		fx.t.Fatal(err)
	}
	if len(probs) > 0 {
		fx.t.Fatalf("check after repair:\n%s", strings.Join(probs, "\n"))
	}
}

func (fx *fixture) remove(t backend.FileType, names ...string) {
	for _, n := range names {
		if err := fx.be.Remove(context.Background(), backend.Handle{Type: t, Name: n}); err != nil {
			fx.t.Fatal(err)
		}
	}
}

func (fx *fixture) list(t backend.FileType) []string {
	var out []string
	if err := fx.be.List(context.Background(), t, func(n string, _ int64) error { out = append(out, n); return nil }); err != nil {
		fx.t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func (fx *fixture) rebuildIndex() repair.IndexResult {
	ctx := context.Background()
	r := fx.open()
	defer r.Close()
	res, err := repair.RebuildIndex(ctx, r, fx.t.Logf)
	if err != nil {
		fx.t.Fatal(err)
	}
	return res
}

func (fx *fixture) repairSnapshots(opt repair.SnapshotsOptions) repair.SnapshotsResult {
	r := fx.open()
	defer r.Close()
	res, err := repair.RepairSnapshots(context.Background(), r, opt)
	if err != nil {
		fx.t.Fatal(err)
	}
	return res
}

// TestIndexFilesLost: with every index file deleted, repair index finds
// every pack again, nothing is lost, and the snapshots read as before.
func TestIndexFilesLost(t *testing.T) {
	fx := newFixture(t)
	r := fx.open()
	before := map[blob.ID]map[string][32]byte{}
	for _, id := range fx.snaps {
		before[id] = digest(t, r, id)
	}
	r.Close()
	packs := len(fx.list(backend.Data)) + len(fx.list(backend.Tree))
	fx.remove(backend.Index, fx.list(backend.Index)...)

	res := fx.rebuildIndex()
	if res.Packs != packs || res.NewlyFound != packs || len(res.Dropped) != 0 || len(res.Unreadable) != 0 {
		t.Fatalf("repair index: %+v, want all %d packs found", res, packs)
	}
	loss := fx.repairSnapshots(repair.SnapshotsOptions{DryRun: true})
	if loss.Damaged != 0 || len(loss.Losses) != 0 {
		t.Fatalf("losses after rebuilding a complete index: %+v", loss)
	}
	fx.check()
	r = fx.open()
	defer r.Close()
	for _, id := range fx.snaps {
		if got := digest(t, r, id); !maps.Equal(got, before[id]) {
			t.Fatalf("snapshot %s reads differently after repair", id.Short())
		}
	}
}

// TestPackLost: a deleted data pack is named by repair index; repair
// snapshots names exactly the files whose content was in it, writes
// copies without them and, with --forget, removes the damaged originals.
// The repository then checks clean and the remaining files read as
// before.
func TestPackLost(t *testing.T) {
	fx := newFixture(t)
	r := fx.open()
	files, _ := fx.files(r, fx.snaps[1])
	before := digest(t, r, fx.snaps[1])
	// The pack of the second backup's large file.
	victim := files[filepath.Join(strings.TrimPrefix(fx.src, "/"), "dir1", "large.bin")][0]
	r.Close()
	var want []string
	for p, packs := range files {
		if slices.Contains(packs, victim) {
			want = append(want, p)
		}
	}
	sort.Strings(want)
	if len(want) == 0 {
		t.Fatal("no file in the victim pack")
	}
	fx.remove(backend.Data, victim.String())

	res := fx.rebuildIndex()
	if !slices.Equal(res.Dropped, []string{victim.String()}) {
		t.Fatalf("repair index dropped %v, want the deleted pack %s", res.Dropped, victim.Short())
	}
	dry := fx.repairSnapshots(repair.SnapshotsOptions{DryRun: true})
	got := lostPaths(dry, fx.snaps[1])
	if !slices.Equal(got, want) {
		t.Fatalf("repair names lost files %v, want %v", got, want)
	}
	// The victim pack holds only the second backup's new data.
	if lost := lostPaths(dry, fx.snaps[0]); len(lost) != 0 {
		t.Fatalf("first snapshot loses %v", lost)
	}
	if n := len(fx.list(backend.Snapshot)); n != 2 {
		t.Fatalf("dry run changed the snapshots: %d", n)
	}
	res2 := fx.repairSnapshots(repair.SnapshotsOptions{Forget: true})
	if res2.Damaged != 1 || res2.Forgotten != 1 || len(res2.Repaired) != 1 {
		t.Fatalf("repair snapshots: %+v", res2)
	}
	fx.check()
	r = fx.open()
	defer r.Close()
	repaired, err := blob.ParseID(res2.Repaired[fx.snaps[1].String()])
	if err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.Load(context.Background(), r, repaired)
	if err != nil {
		t.Fatal(err)
	}
	if sn.Original == nil || *sn.Original != fx.snaps[1] || !slices.Contains(sn.Tags, repair.RepairedTag) {
		t.Fatalf("repaired snapshot record: original %v tags %v", sn.Original, sn.Tags)
	}
	after := digest(t, r, repaired)
	for p, d := range before {
		lost := slices.Contains(want, p)
		if d2, ok := after[p]; ok == lost || (ok && d2 != d) {
			t.Fatalf("%s: in repaired snapshot %v (lost %v)", p, ok, lost)
		}
	}
	if sn.Totals.Files != uint64(len(after)) {
		t.Fatalf("repaired snapshot counts %d files, holds %d", sn.Totals.Files, len(after))
	}
	// Nothing more to repair.
	if again := fx.repairSnapshots(repair.SnapshotsOptions{}); again.Damaged != 0 {
		t.Fatalf("second repair: %+v", again)
	}
}

// TestTreePackLost: with the first backup's tree pack gone, the first
// snapshot loses everything, and the second loses exactly the directories
// it shares with the first (their listings were in that pack); the
// directories the second backup changed keep their files.
func TestTreePackLost(t *testing.T) {
	fx := newFixture(t)
	r := fx.open()
	_, dirs0 := fx.files(r, fx.snaps[0])
	_, dirs1 := fx.files(r, fx.snaps[1])
	r.Close()
	victim := dirs0[""][0]
	var want []string
	for p, packs := range dirs1 {
		parent := ""
		if i := strings.LastIndex(p, "/"); i >= 0 {
			parent = p[:i]
		}
		if packs[0] == victim && (p == "" || dirs1[parent][0] != victim) {
			want = append(want, p)
		}
	}
	sort.Strings(want)
	if len(want) == 0 || slices.Contains(want, "") {
		t.Fatalf("fixture: the second snapshot's lost directories would be %v", want)
	}
	fx.remove(backend.Tree, victim.String())
	fx.rebuildIndex()
	res := fx.repairSnapshots(repair.SnapshotsOptions{Forget: true})
	if res.Damaged != 2 {
		t.Fatalf("repair snapshots: %+v", res)
	}
	if got := lostPaths(res, fx.snaps[0]); !slices.Equal(got, []string{""}) {
		t.Fatalf("first snapshot loses %v, want everything", got)
	}
	if got := lostPaths(res, fx.snaps[1]); !slices.Equal(got, want) {
		t.Fatalf("second snapshot loses %v, want %v", got, want)
	}
	for _, l := range res.Losses {
		if !strings.Contains(l.What, "directory contents lost") {
			t.Fatalf("unexpected loss %+v", l)
		}
	}
	fx.check()
	r = fx.open()
	defer r.Close()
	repaired, err := blob.ParseID(res.Repaired[fx.snaps[1].String()])
	if err != nil {
		t.Fatal(err)
	}
	kept := digest(t, r, repaired)
	if _, ok := kept[filepath.Join(strings.TrimPrefix(fx.src, "/"), "dir1", "large.bin")]; !ok {
		t.Fatalf("the changed directory's file is gone from the repaired snapshot: %d files kept", len(kept))
	}
}

func lostPaths(res repair.SnapshotsResult, id blob.ID) []string {
	var out []string
	for _, l := range res.Losses {
		if l.Snapshot == id.String() {
			out = append(out, l.Path)
		}
	}
	sort.Strings(out)
	return out
}
