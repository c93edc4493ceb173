package app

import (
	"context"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/pattern"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// TestFindUnreadableSubtree: a directory whose listing cannot be read is
// named in every snapshot holding it (read once), and the rest of each
// snapshot is still searched.
func TestFindUnreadableSubtree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Init(ctx, Options{Repository: filepath.Join(dir, "repo"), CacheDir: filepath.Join(dir, "cache"),
		Password: func() ([]byte, error) { return []byte("pw"), nil },
		KDF: func() (crypto.KDFParams, error) {
			p, err := crypto.DefaultKDFParams()
			p.Time, p.Memory, p.Threads = 1, 8*1024, 1
			return p, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	save := func(nodes ...snapshot.Node) blob.ID {
		t.Helper()
		id, err := snapshot.SaveTree(ctx, a.r, &snapshot.Tree{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	file := snapshot.Node{Name: "found.txt", Type: snapshot.File, Mode: 0o644}
	missing := blob.ID{1, 2, 3} // in no index
	root := save(snapshot.Node{Name: "broken", Type: snapshot.Dir, Subtree: missing}, file)
	if err := a.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		sn := &snapshot.Snapshot{Time: time.Unix(int64(1e9+i), 0), Host: "h", Roots: []string{"/"}, Tree: root}
		if err := snapshot.Save(ctx, a.r, sn); err != nil {
			t.Fatal(err)
		}
	}
	var found []string
	res, err := a.Find(ctx, FindOptions{Patterns: []string{"*.txt"}}, func(sn *snapshot.Snapshot, m FindMatch) error {
		found = append(found, m.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(found, []string{"/found.txt", "/found.txt"}) || res.Snapshots != 2 || len(res.Errors) != 2 {
		t.Fatalf("found %q, result %+v", found, res)
	}
	for _, e := range res.Errors {
		if !strings.Contains(e, "/broken: load tree") {
			t.Errorf("error %q does not name the directory", e)
		}
	}
	if res.TreesRead != 1 || res.TreesReused != 1 {
		t.Errorf("read %d, reused %d: want the root read once", res.TreesRead, res.TreesReused)
	}
}

// TestFindForgets: a search that may remember only a few subtrees finds
// what one that remembers all does, reading more.
func TestFindForgets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Init(ctx, Options{Repository: filepath.Join(dir, "repo"), CacheDir: filepath.Join(dir, "cache"),
		Password: func() ([]byte, error) { return []byte("pw"), nil },
		KDF: func() (crypto.KDFParams, error) {
			p, err := crypto.DefaultKDFParams()
			p.Time, p.Memory, p.Threads = 1, 8*1024, 1
			return p, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	src := filepath.Join(dir, "src")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 300, Seed: 3, LargeEvery: 1000}); err != nil {
		t.Fatal(err)
	}
	var sns []*snapshot.Snapshot
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("changed-%d.txt", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := a.Backup(ctx, BackupOptions{Paths: []string{src}, NoJournal: true})
		if err != nil {
			t.Fatal(err)
		}
		sns = append(sns, res.Snapshot)
	}
	pats, err := pattern.NewList("find", []string{"*1*", src + "/*/*2*"}, false)
	if err != nil {
		t.Fatal(err)
	}
	search := func(limit int) ([][]FindMatch, int) {
		f := &finder{r: a.r, pats: pats, pathKeyed: pats.PathDependent(), seed: maphash.MakeSeed(), memo: map[findKey]findMemo{}, limit: limit}
		var out [][]FindMatch
		for _, sn := range sns {
			root, err := f.dir(ctx, sn.Tree, "")
			if err != nil {
				t.Fatal(err)
			}
			var ms []FindMatch
			var errs []string
			if err := root.collect("", func(m FindMatch) error { ms = append(ms, m); return nil }, &errs); err != nil {
				t.Fatal(err)
			}
			out = append(out, ms)
		}
		return out, f.read
	}
	all, readAll := search(findMemoLimit)
	few, readFew := search(4)
	if !reflect.DeepEqual(all, few) || len(all[0]) == 0 {
		t.Fatalf("with a small memory the search found other things (%d, %d matches)", len(all[0]), len(few[0]))
	}
	if readFew <= readAll {
		t.Errorf("read %d trees remembering 4, %d remembering all", readFew, readAll)
	}
}
