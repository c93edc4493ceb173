package repo

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
)

// TestMergeDuringBackup: a backup adding many blobs moves those whose
// index files are written into the index table as it goes, so memory does
// not grow with them; every blob stays findable throughout, and no table
// ever claims a blob that no stored index file names (a process killed
// after the merge must not leave the cache trusting unindexed data).
func TestMergeDuringBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	be, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(dir, "cache")
	opt := Options{KDF: cheapKDF, CacheDir: func(string) (string, error) { return cacheDir, nil },
		mergeFiles: 1 << 20, mergeBlobs: 1 << 30, indexBlobs: 40, mergeDuring: 100}
	r, err := Init(ctx, be.WithoutSync(), []byte("pw"), opt)
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.PackSize = 1 << 20 // many packs, so index files are written as the backup goes
	// Every table written must name only stored index files, and hold
	// only blobs those files name.
	checkTable := func(stage string) {
		t.Helper()
		tb, err := openTable(tableFile(cacheDir))
		if err != nil || tb == nil {
			return
		}
		defer tb.close()
		named := map[blob.ID]bool{}
		for n := range tb.nameSet() {
			packs, err := r.LoadIndexFile(ctx, n)
			if err != nil {
				t.Fatalf("%s: the table names index file %s, which cannot be read: %v", stage, n, err)
			}
			for _, p := range packs {
				for _, b := range p.Blobs {
					named[b.ID] = true
				}
			}
		}
		for i := 0; i < tb.n; i++ {
			if id, _, ok := tb.location(i); ok && !named[id] {
				t.Fatalf("%s: the table claims blob %s, which none of its index files names", stage, id.Short())
			}
		}
	}
	var ids []blob.ID
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				plain := make([]byte, 30000)
				rand.Read(plain)
				copy(plain, fmt.Sprintf("worker %d blob %d", w, i))
				id := r.Key().ID(plain)
				if _, err := r.SaveBlob(ctx, blob.Data, id, plain); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				// Pending first: a blob leaves pending only once indexed.
				if !r.isPending(id) && !r.Index().Has(id) {
					t.Errorf("blob %s saved but neither indexed nor pending", id.Short())
				}
			}
		}()
	}
	wg.Wait()
	checkTable("during the backup")
	if n := r.idx.baseLen(); n < 100 {
		t.Fatalf("the index table holds %d blobs of %d saved: nothing was merged while the backup ran", n, len(ids))
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !r.Index().Has(id) {
			t.Fatalf("blob %s lost from the index", id.Short())
		}
	}
	checkTable("after the flush")
	r.Close()
	checkTable("after close")
	r2, err := Open(ctx, be.WithoutSync(), []byte("pw"), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for _, id := range ids {
		if !r2.Index().Has(id) {
			t.Fatalf("blob %s missing after reopening", id.Short())
		}
	}
	var files int
	be.List(ctx, backend.Index, func(string, int64) error { files++; return nil })
	if files < 2 {
		t.Fatalf("%d index files for %d blobs: want one every few packs", files, len(ids))
	}
}

// isPending reports whether blob id is saved but its pack not yet stored.
func (r *Repository) isPending(id blob.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.pending[id]
	return ok
}

// TestOpenMergesAsItReads: an open that reads many index files (a new
// cache, or the first open after a prune) merges them into the index table
// as it goes, so it never holds more than a bounded number of blobs in
// memory; every blob stays findable, and the table names only stored index
// files.
func TestOpenMergesAsItReads(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	be, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{KDF: cheapKDF, mergeFiles: 1 << 20, mergeBlobs: 1 << 30, indexBlobs: 30, mergeDuring: 1 << 30}
	r, err := Init(ctx, be.WithoutSync(), []byte("pw"), opt) // no cache: nothing merged yet
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.PackSize = 1 << 20
	var ids []blob.ID
	for i := range 600 {
		plain := make([]byte, 20000)
		rand.Read(plain)
		copy(plain, fmt.Sprintf("blob %d", i))
		id := r.Key().ID(plain)
		if _, err := r.SaveBlob(ctx, blob.Data, id, plain); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.Close()

	cacheDir := filepath.Join(dir, "cache")
	opt.CacheDir = func(string) (string, error) { return cacheDir, nil }
	opt.loadMerge = 100
	r2, err := Open(ctx, be.WithoutSync(), []byte("pw"), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	inMemory, _ := r2.idx.overlayLen()
	if inMemory >= 100+200 || r2.idx.baseLen()+inMemory < len(ids) {
		t.Fatalf("after opening: %d blobs in memory, %d in the table, of %d", inMemory, r2.idx.baseLen(), len(ids))
	}
	for _, id := range ids {
		if !r2.Index().Has(id) {
			t.Fatalf("blob %s missing after opening", id.Short())
		}
	}
	stored := map[string]bool{}
	be.List(ctx, backend.Index, func(n string, _ int64) error { stored[n] = true; return nil })
	tb, err := openTable(tableFile(cacheDir))
	if err != nil || tb == nil {
		t.Fatalf("no index table after opening: %v", err)
	}
	defer tb.close()
	for n := range tb.nameSet() {
		if !stored[n] {
			t.Fatalf("the table names index file %s, which is not stored", n)
		}
	}
}
