package repo

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/crypto"
)

// TestIndexShrunk: once an index file the cache knew is gone (a prune or a
// repair removed it), the cache says so, however the file was known: in
// the index table, in the list of files not merged yet, or written by a
// process that was killed before it closed.
func TestIndexShrunk(t *testing.T) {
	ctx := context.Background()
	cheap := func() (crypto.KDFParams, error) {
		p, err := crypto.DefaultKDFParams()
		p.Time, p.Memory, p.Threads = 1, 8*1024, 1
		return p, err
	}
	for _, tt := range []struct {
		name       string
		mergeFiles int  // index files before they are merged into the table
		close      bool // the writer closes its handle (else it is "killed")
		remove     bool // an index file is removed afterwards
		want       bool
	}{
		{"merged into the table", 1, true, true, true},
		{"not merged yet", 100, true, true, true},
		{"writer killed", 100, false, true, true},
		{"nothing removed", 1, true, false, false},
		{"nothing removed, not merged", 100, true, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			be, err := local.Create(filepath.Join(dir, "repo"))
			if err != nil {
				t.Fatal(err)
			}
			cacheDir := filepath.Join(dir, "cache")
			opt := Options{KDF: cheap, CacheDir: func(string) (string, error) { return cacheDir, nil }, mergeFiles: tt.mergeFiles, mergeBlobs: 1 << 30}
			r, err := Init(ctx, be.WithoutSync(), []byte("pw"), opt)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				plain := []byte(fmt.Sprintf("blob %d", i))
				if _, err := r.SaveBlob(ctx, blob.Data, r.Key().ID(plain), plain); err != nil {
					t.Fatal(err)
				}
				if err := r.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			victim := r.WrittenIndexFiles()[1]
			if tt.close {
				r.Close()
				if merged := tableNames(t, cacheDir); merged[victim] != (tt.mergeFiles == 1) {
					t.Fatalf("index file in the table: %v, want %v", merged[victim], tt.mergeFiles == 1)
				}
			}
			if s, err := r.IndexShrunk(); err != nil || !s.IsZero() {
				t.Fatalf("before any removal: %v %v", s, err)
			}
			before := time.Now()
			if tt.remove {
				if err := be.Remove(ctx, backend.Handle{Type: backend.Index, Name: victim}); err != nil {
					t.Fatal(err)
				}
			}
			r2, err := Open(ctx, be.WithoutSync(), []byte("pw"), opt)
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			s, err := r2.IndexShrunk()
			if err != nil {
				t.Fatal(err)
			}
			if got := !s.IsZero(); got != tt.want || (got && s.Before(before)) {
				t.Fatalf("IndexShrunk %v (after removing at %v), want a time: %v", s, before, tt.want)
			}
		})
	}
}

// TestDropIndexTableNotesShrink: maintenance that removes index files
// records it at once, since the next open has no table to notice it by.
func TestDropIndexTableNotesShrink(t *testing.T) {
	dir := t.TempDir()
	r := &Repository{cacheDir: dir}
	if err := r.DropIndexTable(); err != nil {
		t.Fatal(err)
	}
	if s, err := r.IndexShrunk(); err != nil || s.IsZero() {
		t.Fatalf("IndexShrunk %v %v after DropIndexTable", s, err)
	}
}

func tableNames(t *testing.T, dir string) map[string]bool {
	tb, err := openTable(tableFile(dir))
	if err != nil || tb == nil {
		return map[string]bool{}
	}
	defer tb.close()
	return tb.nameSet()
}
