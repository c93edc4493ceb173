package check

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

var password = []byte("secret")

func cheapKDF() (crypto.KDFParams, error) {
	p, err := crypto.DefaultKDFParams()
	p.Time, p.Memory = 1, 8*1024
	return p, err
}

// fixture is a repository holding two snapshots of a generated directory,
// with what the tests need to know about where things are stored.
type fixture struct {
	dir     string                         // repository directory
	snaps   []blob.ID                      // oldest first
	roots   []blob.ID                      // their root trees
	indexOf map[blob.ID]string             // pack -> index file
	packs   map[backend.FileType][]blob.ID // sorted
	sizes   map[blob.ID]int64              // pack sizes
	paths   map[blob.ID][]string           // data blob -> files holding it
	trees   int                            // distinct trees in the snapshots
	blobLoc map[blob.ID]repo.Location      // every indexed blob
}

// newFixture makes two snapshots of a generated directory: the first of a
// few large random files and some small ones, the second after more large
// files were added, so that the repository has two data packs and the
// snapshots share subtrees.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	write := func(name string, size int) {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, gentree.RandomBytes(size, rng.Uint64()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, password, repo.Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{dir: dir, packs: map[backend.FileType][]blob.ID{}, sizes: map[blob.ID]int64{},
		paths: map[blob.ID][]string{}, blobLoc: map[blob.ID]repo.Location{}, indexOf: map[blob.ID]string{}}
	// Each backup stays below the pack size, so each Flush writes one data
	// pack and one tree pack.
	backup := func() {
		var parent blob.ID
		if len(fx.roots) > 0 {
			parent = fx.roots[len(fx.roots)-1]
		}
		res, err := archive.Run(ctx, r, archive.Options{Roots: []string{src}, ParentTree: parent})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Errors) > 0 {
			t.Fatalf("backup errors: %v", res.Errors)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		sn := &snapshot.Snapshot{Time: time.Now(), Host: "h", Roots: []string{src}, Tree: res.Tree, Totals: res.Totals}
		if err := snapshot.Save(ctx, r, sn); err != nil {
			t.Fatal(err)
		}
		fx.snaps = append(fx.snaps, sn.ID)
		fx.roots = append(fx.roots, res.Tree)
	}
	write("big0", 3<<20)
	write("big1", 3<<20)
	write("small/a.txt", 100)
	write("small/b.txt", 3000)
	write("small/deep/c.txt", 10)
	write("empty", 0)
	if err := os.Symlink("small/a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	backup()
	write("big2", 3<<20)
	write("big3", 3<<20)
	backup()

	for _, ft := range []backend.FileType{backend.Data, backend.Tree} {
		if err := be.List(ctx, ft, func(name string, size int64) error {
			id, err := blob.ParseID(name)
			fx.packs[ft] = append(fx.packs[ft], id)
			fx.sizes[id] = size
			return err
		}); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(fx.packs[ft], func(a, b blob.ID) int { return strings.Compare(a.String(), b.String()) })
	}
	if len(fx.packs[backend.Data]) != 2 || len(fx.packs[backend.Tree]) != 2 {
		t.Fatalf("want two data and two tree packs, have %v", fx.packs)
	}
	if err := be.List(ctx, backend.Index, func(name string, _ int64) error {
		packs, err := r.LoadIndexFile(ctx, name)
		for _, p := range packs {
			fx.indexOf[p.ID] = name
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r.Index().Each(func(id blob.ID, l repo.Location) { fx.blobLoc[id] = l })
	trees := map[blob.ID]bool{}
	for _, id := range fx.snaps {
		sn, err := snapshot.Load(ctx, r, id)
		if err != nil {
			t.Fatal(err)
		}
		trees[sn.Tree] = true
		if err := snapshot.Walk(ctx, r, sn.Tree, "", func(p string, n *snapshot.Node) error {
			switch n.Type {
			case snapshot.Dir:
				trees[n.Subtree] = true
			case snapshot.File:
				for _, id := range n.Content {
					if !slices.Contains(fx.paths[id], "/"+p) {
						fx.paths[id] = append(fx.paths[id], "/"+p)
					}
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	fx.trees = len(trees)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return fx
}

// clone copies the fixture's repository so a test can damage it.
func (fx *fixture) clone(t *testing.T) *fixture {
	t.Helper()
	c := *fx
	c.dir = filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(c.dir, os.DirFS(fx.dir)); err != nil {
		t.Fatal(err)
	}
	return &c
}

// open opens the repository afresh, so no state from before the damage
// is used.
func (fx *fixture) open(t *testing.T) *repo.Repository { return fx.openCached(t, "") }

// openCached opens the repository with a local cache in dir, unless dir is
// empty.
func (fx *fixture) openCached(t *testing.T, dir string) *repo.Repository {
	t.Helper()
	be, err := local.Open(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	var opt repo.Options
	if dir != "" {
		opt.CacheDir = func(string) (string, error) { return dir, nil }
	}
	r, err := repo.Open(context.Background(), be, password, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// packPath returns the file of a pack, made writable.
func (fx *fixture) packPath(t *testing.T, ft backend.FileType, id blob.ID) string {
	t.Helper()
	p := filepath.Join(fx.dir, string(ft), id.String()[:2], id.String())
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x40
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, r *repo.Repository, opt Options) (Summary, []Problem) {
	t.Helper()
	var probs []Problem
	sum, err := Run(context.Background(), r, opt, func(p Problem) {
		t.Logf("problem: %+v", p)
		probs = append(probs, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Problems != len(probs) {
		t.Errorf("summary counts %d problems, %d reported", sum.Problems, len(probs))
	}
	return sum, probs
}

// want describes an expected problem; empty fields match anything.
type want struct{ kind, object, path, blob string }

func (w want) matches(p Problem) bool {
	return (w.kind == "" || w.kind == p.Kind) && (w.object == "" || w.object == p.Object) &&
		(w.path == "" || w.path == p.Path) && (w.blob == "" || w.blob == p.Blob)
}

// expect checks that every wanted problem was reported and nothing else.
func expect(t *testing.T, what string, probs []Problem, wants []want) {
	t.Helper()
	for _, w := range wants {
		if !slices.ContainsFunc(probs, w.matches) {
			t.Errorf("%s: no problem matches %+v; got %+v", what, w, probs)
		}
	}
	for _, p := range probs {
		if !slices.ContainsFunc(wants, func(w want) bool { return w.matches(p) }) {
			t.Errorf("%s: unexpected problem %+v", what, p)
		}
		if p.Err == "" {
			t.Errorf("%s: problem without an error message: %+v", what, p)
		}
	}
}

func TestCleanRepository(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	npacks := len(fx.packs[backend.Data]) + len(fx.packs[backend.Tree])
	var total int64
	for _, s := range fx.sizes {
		total += s
	}
	for _, readData := range []bool{false, true} {
		t.Run(fmt.Sprintf("readData=%v", readData), func(t *testing.T) {
			sum, probs := run(t, fx.open(t), Options{ReadData: readData})
			expect(t, "clean", probs, nil)
			want := Summary{Snapshots: len(fx.snaps), Trees: fx.trees, Blobs: len(fx.blobLoc), Packs: npacks}
			if readData {
				want.PacksRead, want.BytesRead = npacks, total
			}
			if !reflect.DeepEqual(sum, want) {
				t.Errorf("summary %+v, want %+v", sum, want)
			}
		})
	}

	// A pack no index mentions is what an interrupted backup leaves.
	be, err := local.Open(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	stray := []byte("pack of a backup that never finished")
	sum := sha256.Sum256(stray)
	if err := be.Save(ctx, backend.Handle{Type: backend.Data, Name: blob.ID(sum).String()}, stray); err != nil {
		t.Fatal(err)
	}
	s, probs := run(t, fx.open(t), Options{ReadData: true})
	expect(t, "stray pack", probs, nil)
	if s.UnreferencedPacks != 1 || s.PacksRead != npacks {
		t.Errorf("stray pack: %+v", s)
	}
}

func TestDamage(t *testing.T) {
	tmpl := newFixture(t)
	latest := tmpl.roots[1]
	dataPack := tmpl.packs[backend.Data][0]
	treePack := tmpl.blobLoc[latest].Pack
	indexName := tmpl.indexOf[treePack] // written by the second backup

	// A data blob in dataPack, and the files of every blob there.
	var victim blob.ID
	var lostFiles []string
	for id, l := range tmpl.blobLoc {
		if l.Pack != dataPack {
			continue
		}
		if victim.IsNull() || l.Offset < tmpl.blobLoc[victim].Offset {
			victim = id
		}
		for _, p := range tmpl.paths[id] {
			if !slices.Contains(lostFiles, p) {
				lostFiles = append(lostFiles, p)
			}
		}
	}
	if victim.IsNull() || len(tmpl.paths[victim]) != 1 || len(lostFiles) == 0 {
		t.Fatalf("fixture: no suitable blob in pack %s", dataPack.Short())
	}
	dataObj := "data/" + dataPack.String()
	treeObj := "trees/" + treePack.String()
	snapObj := "snapshot " + tmpl.snaps[1].Short()
	indexObj := "index/" + indexName
	missing := make([]want, len(lostFiles))
	for i, p := range lostFiles {
		missing[i] = want{kind: KindMissingPack, object: dataObj, path: p}
	}

	tests := []struct {
		name   string
		damage func(t *testing.T, fx *fixture)
		// structure is what the structure check finds, readData what
		// --read-data finds.
		structure, readData []want
		// count is the exact number of problems --read-data reports, if
		// known.
		count int
	}{
		{
			name: "data pack byte flipped",
			damage: func(t *testing.T, fx *fixture) {
				l := fx.blobLoc[victim]
				flipByte(t, fx.packPath(t, backend.Data, dataPack), int64(l.Offset+l.Length/2))
			},
			readData: []want{
				{kind: KindCorruptPack, object: dataObj},
				{kind: KindCorruptBlob, object: dataObj, blob: victim.String(), path: tmpl.paths[victim][0]},
			},
			count: 2,
		},
		{
			name: "data pack deleted",
			damage: func(t *testing.T, fx *fixture) {
				if err := os.Remove(fx.packPath(t, backend.Data, dataPack)); err != nil {
					t.Fatal(err)
				}
			},
			structure: missing,
			readData:  missing,
			count:     len(missing),
		},
		{
			name: "index byte flipped",
			damage: func(t *testing.T, fx *fixture) {
				flipByte(t, filepath.Join(fx.dir, "index", indexName), 10)
			},
			// The first snapshot is indexed elsewhere; the second has lost
			// its whole tree.
			structure: []want{{kind: KindCorruptIndex, object: indexObj}, {kind: KindMissingBlob, path: "/", blob: latest.String()}},
			readData:  []want{{kind: KindCorruptIndex, object: indexObj}, {kind: KindMissingBlob, path: "/", blob: latest.String()}},
			count:     2,
		},
		{
			name: "snapshot byte flipped",
			damage: func(t *testing.T, fx *fixture) {
				flipByte(t, filepath.Join(fx.dir, "snapshots", fx.snaps[1].String()), 30)
			},
			structure: []want{{kind: KindCorruptSnapshot, object: snapObj}},
			readData:  []want{{kind: KindCorruptSnapshot, object: snapObj}},
			count:     1,
		},
		{
			name: "tree pack truncated",
			damage: func(t *testing.T, fx *fixture) {
				size := fx.sizes[treePack] / 2
				if l := fx.blobLoc[latest]; int64(l.Offset+l.Length) <= size {
					t.Fatal("fixture: the root tree survives truncation")
				}
				if err := os.Truncate(fx.packPath(t, backend.Tree, treePack), size); err != nil {
					t.Fatal(err)
				}
			},
			structure: []want{{kind: KindSizeMismatch, object: treeObj, path: "/"}},
			// The pack's hash and header are wrong; the lost blobs are
			// not reported again.
			readData: []want{
				{kind: KindSizeMismatch, object: treeObj, path: "/"},
				{kind: KindCorruptPack, object: treeObj},
			},
			count: 3,
		},
	}
	for _, tc := range tests {
		// With a cache filled before the damage, intact cached copies must
		// not hide it.
		for _, cached := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cached=%v", tc.name, cached), func(t *testing.T) {
				fx := tmpl.clone(t)
				var cacheDir string
				if cached {
					cacheDir = t.TempDir()
					r := fx.openCached(t, cacheDir)
					_, probs := run(t, r, Options{})
					expect(t, "before damage", probs, nil)
					if sns, errs, err := snapshot.All(context.Background(), r); err != nil || len(errs) > 0 || len(sns) != len(fx.snaps) {
						t.Fatalf("load snapshots: %v %v", err, errs)
					}
				}
				tc.damage(t, fx)

				_, probs := run(t, fx.openCached(t, cacheDir), Options{})
				expect(t, "structure check", probs, tc.structure)

				sum, probs := run(t, fx.openCached(t, cacheDir), Options{ReadData: true})
				expect(t, "read-data check", probs, tc.readData)
				if tc.count > 0 && len(probs) != tc.count {
					t.Errorf("read-data check: %d problems, want %d: %+v", len(probs), tc.count, probs)
				}
				if sum.PacksRead == 0 {
					t.Error("read-data check read no packs")
				}
			})
		}
	}
}

// TestStructureProblems stores a snapshot whose records contradict the
// index and each other.
func TestStructureProblems(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	r := fx.open(t)

	var data blob.ID
	for id, l := range fx.blobLoc {
		if l.Type == blob.Data {
			data = id
			break
		}
	}
	root, err := snapshot.LoadTree(ctx, r, fx.roots[0])
	if err != nil {
		t.Fatal(err)
	}
	sub := root.Nodes[0]
	if sub.Type != snapshot.Dir {
		t.Fatalf("fixture: root entry %q is not a directory", sub.Name)
	}
	wrongAgg := sub.Agg
	wrongAgg.Files++
	var unknown blob.ID
	unknown[0] = 0xee
	raw := uint64(fx.blobLoc[data].RawLen)
	bad := &snapshot.Tree{Nodes: []snapshot.Node{
		{Name: "agg", Type: snapshot.Dir, Subtree: sub.Subtree, Agg: wrongAgg},
		{Name: "missing", Type: snapshot.File, Size: 1, Content: []blob.ID{unknown}},
		{Name: "ok", Type: snapshot.File, Size: raw, Content: []blob.ID{data}},
		{Name: "short", Type: snapshot.File, Size: raw + 1, Content: []blob.ID{data}},
		{Name: "typed", Type: snapshot.File, Content: []blob.ID{sub.Subtree}},
	}}
	id, err := snapshot.SaveTree(ctx, r, bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sn := &snapshot.Snapshot{Time: time.Now(), Host: "h", Roots: []string{"/x"}, Tree: id}
	if err := snapshot.Save(ctx, r, sn); err != nil {
		t.Fatal(err)
	}

	sum, probs := run(t, fx.open(t), Options{})
	expect(t, "structure check", probs, []want{
		{kind: KindAggregateMismatch, object: "tree " + sub.Subtree.Short(), path: "/agg"},
		{kind: KindMissingBlob, path: "/missing", blob: unknown.String()},
		{kind: KindSizeMismatch, path: "/short"},
		{kind: KindMissingBlob, path: "/typed", blob: sub.Subtree.String()},
		{kind: KindAggregateMismatch, object: "snapshot " + sn.ID.Short(), path: "/"},
	})
	if len(probs) != 5 {
		t.Errorf("%d problems, want 5: %+v", len(probs), probs)
	}
	// The second snapshot adds one tree; its subtree is not visited again.
	if sum.Snapshots != 3 || sum.Trees != fx.trees+1 {
		t.Errorf("summary %+v: want 3 snapshots and %d trees", sum, fx.trees+1)
	}
}

// TestIndexMismatch replaces the index of a new pack by one that
// disagrees with the pack.
func TestIndexMismatch(t *testing.T) {
	ctx := context.Background()
	tmpl := newFixture(t)
	tests := []struct {
		name  string
		edit  func(bs []repo.PackedBlob) []repo.PackedBlob
		wants func(bs []repo.PackedBlob) []want
	}{
		{
			name: "raw length",
			edit: func(bs []repo.PackedBlob) []repo.PackedBlob { bs[0].RawLen++; return bs },
			// Both the header and the decoded blob disagree.
			wants: func(bs []repo.PackedBlob) []want {
				w := want{kind: KindIndexMismatch, blob: bs[0].ID.String()}
				return []want{w, w}
			},
		},
		{
			name: "offset",
			edit: func(bs []repo.PackedBlob) []repo.PackedBlob { bs[1].Offset++; bs[1].Length--; return bs },
			wants: func(bs []repo.PackedBlob) []want {
				return []want{{kind: KindIndexMismatch, blob: bs[1].ID.String()}, {kind: KindCorruptBlob, blob: bs[1].ID.String()}}
			},
		},
		{
			name: "blob left out",
			edit: func(bs []repo.PackedBlob) []repo.PackedBlob { return bs[:1] },
			wants: func(bs []repo.PackedBlob) []want {
				return []want{{kind: KindIndexMismatch, blob: bs[1].ID.String()}}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := tmpl.clone(t)
			r := fx.open(t)
			for _, b := range []string{"first blob of the new pack", "second blob of the new pack"} {
				if _, err := r.SaveBlob(ctx, blob.Data, r.Key().ID([]byte(b)), []byte(b)); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			var name string
			if err := r.Backend().List(ctx, backend.Index, func(n string, _ int64) error {
				if !slices.Contains(slices.Collect(maps.Values(fx.indexOf)), n) {
					name = n
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			packs, err := r.LoadIndexFile(ctx, name)
			if err != nil || len(packs) != 1 || len(packs[0].Blobs) != 2 {
				t.Fatalf("new index %q: %v, %+v", name, err, packs)
			}
			if err := os.Remove(filepath.Join(fx.dir, "index", name)); err != nil {
				t.Fatal(err)
			}
			p := packs[0]
			p.Blobs = tc.edit(slices.Clone(p.Blobs))
			if _, err := r.SaveUnpacked(ctx, backend.Index, repo.EncodeIndex([]repo.IndexPack{p})); err != nil {
				t.Fatal(err)
			}

			_, probs := run(t, fx.open(t), Options{})
			expect(t, "structure check", probs, nil)
			_, probs = run(t, fx.open(t), Options{ReadData: true})
			wants := tc.wants(packs[0].Blobs)
			pack := "data/" + p.ID.String()
			for i := range wants {
				wants[i].object = pack
			}
			expect(t, "read-data check", probs, wants)
			if len(probs) != len(wants) {
				t.Errorf("%d problems, want %d", len(probs), len(wants))
			}
		})
	}
}

func TestSubsets(t *testing.T) {
	tmpl := newFixture(t)
	var ids []blob.ID
	for _, ps := range tmpl.packs {
		ids = append(ids, ps...)
	}
	slices.SortFunc(ids, func(a, b blob.ID) int { return strings.Compare(a.String(), b.String()) })

	t.Run("n/t partitions", func(t *testing.T) {
		for _, total := range []int{1, 2, 3, 7} {
			seen := map[blob.ID]int{}
			for n := 1; n <= total; n++ {
				for _, id := range selectPacks(ids, Options{SubsetN: n, SubsetT: total}) {
					seen[id]++
				}
			}
			for _, id := range ids {
				if seen[id] != 1 {
					t.Errorf("1/%d..%d/%d read pack %s %d times", total, total, total, id.Short(), seen[id])
				}
			}
		}
		if a, b := selectPacks(ids, Options{SubsetN: 1, SubsetT: 2}), selectPacks(ids, Options{SubsetN: 1, SubsetT: 2}); !slices.Equal(a, b) {
			t.Error("n/t selection is not stable")
		}
	})

	t.Run("1/2 and 2/2 read every pack once", func(t *testing.T) {
		fx := tmpl.clone(t)
		bad := fx.packs[backend.Data][1]
		flipByte(t, fx.packPath(t, backend.Data, bad), 0)
		var read int
		var bytes int64
		var found int
		for n := 1; n <= 2; n++ {
			sum, probs := run(t, fx.open(t), Options{SubsetN: n, SubsetT: 2})
			read += sum.PacksRead
			bytes += sum.BytesRead
			if slices.ContainsFunc(probs, want{kind: KindCorruptPack, object: "data/" + bad.String()}.matches) {
				found++
			}
		}
		var total int64
		for _, s := range fx.sizes {
			total += s
		}
		if read != len(ids) || bytes != total {
			t.Errorf("read %d packs, %d bytes; want %d, %d", read, bytes, len(ids), total)
		}
		if found != 1 {
			t.Errorf("damaged pack found by %d of the two halves, want 1", found)
		}
	})

	t.Run("percentage", func(t *testing.T) {
		r := tmpl.open(t)
		for _, tc := range []struct {
			fraction float64
			want     int
		}{{0.01, 1}, {0.5, (len(ids) + 1) / 2}, {1, len(ids)}} {
			sum, probs := run(t, r, Options{SubsetFraction: tc.fraction})
			expect(t, "subset", probs, nil)
			if sum.PacksRead != tc.want {
				t.Errorf("fraction %v read %d packs, want %d", tc.fraction, sum.PacksRead, tc.want)
			}
		}
	})
}

func TestParseSubset(t *testing.T) {
	good := []struct {
		in       string
		fraction float64
		n, t     int
	}{
		{"5%", 0.05, 0, 0},
		{"2.5%", 0.025, 0, 0},
		{"100%", 1, 0, 0},
		{"1/10", 0, 1, 10},
		{"10/10", 0, 10, 10},
		{"1/1", 0, 1, 1},
	}
	for _, tc := range good {
		f, n, tt, err := ParseSubset(tc.in)
		if err != nil || f != tc.fraction || n != tc.n || tt != tc.t {
			t.Errorf("ParseSubset(%q) = %v, %d, %d, %v; want %v, %d, %d", tc.in, f, n, tt, err, tc.fraction, tc.n, tc.t)
		}
		if err == nil {
			if err := (Options{SubsetFraction: f, SubsetN: n, SubsetT: tt}).validate(); err != nil {
				t.Errorf("ParseSubset(%q) gives invalid options: %v", tc.in, err)
			}
		}
	}
	for _, in := range []string{"", "5", "%", "0%", "-5%", "101%", "NaN%", "five%", "0/10", "11/10", "1/0", "-1/5", "a/b", "1/2/3", " 1/2"} {
		_, _, _, err := ParseSubset(in)
		if err == nil {
			t.Errorf("ParseSubset(%q) succeeded", in)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("ParseSubset(%q): error %q does not name the value", in, err)
		}
	}
}

func TestRunStops(t *testing.T) {
	fx := newFixture(t)
	r := fx.open(t)
	for _, opt := range []Options{{SubsetN: 3, SubsetT: 2}, {SubsetFraction: 1.5}, {SubsetFraction: 0.5, SubsetN: 1, SubsetT: 2}} {
		if _, err := Run(context.Background(), r, opt, nil); err == nil {
			t.Errorf("options %+v accepted", opt)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, r, Options{ReadData: true}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run returned %v", err)
	}
}
