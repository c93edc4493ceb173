package repo

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
)

// TestDoomedIndexFile: blobs named only by a doomed index file can be
// read but are not offered for deduplication, also through the cache's
// index table, which never takes them in.
func TestDoomedIndexFile(t *testing.T) {
	ctx := context.Background()
	l, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	be := l.WithoutSync()
	cacheDir := t.TempDir()
	opt := Options{KDF: cheapKDF, CacheDir: func(string) (string, error) { return cacheDir, nil }, mergeFiles: 1, mergeBlobs: 1}
	r, err := Init(ctx, be, []byte("pw"), opt)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("only a forgotten snapshot used this")
	id := r.Key().ID(plain)
	if _, err := r.SaveBlob(ctx, blob.Data, id, plain); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	live := r.WrittenIndexFiles()
	packs, err := r.LoadIndexFile(ctx, live[0])
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// What prune does: name the pack in a doomed file, drop the live one.
	r, err = Open(ctx, be, []byte("pw"), opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveIndexFiles(ctx, packs, true); err != nil {
		t.Fatal(err)
	}
	if err := be.Remove(ctx, backend.Handle{Type: backend.Index, Name: live[0]}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	for i := range 2 { // the second open finds a table written by the first
		r, err := Open(ctx, be, []byte("pw"), opt)
		if err != nil {
			t.Fatal(err)
		}
		if r.Index().Has(id) {
			t.Fatalf("open %d: a doomed blob is offered for deduplication", i)
		}
		loc, ok := r.Index().Lookup(id)
		if !ok || !loc.Doomed || loc.Pack != packs[0].ID {
			t.Fatalf("open %d: lookup of a doomed blob: %+v %v", i, loc, ok)
		}
		got, err := r.LoadBlob(ctx, blob.Data, id)
		if err != nil || string(got) != string(plain) {
			t.Fatalf("open %d: read doomed blob: %q %v", i, got, err)
		}
		if n := r.Index().Len(); n != 0 {
			t.Fatalf("open %d: index counts %d live blobs", i, n)
		}
		// A backup storing the same content again writes a live copy.
		if isNew, err := r.SaveBlob(ctx, blob.Data, id, plain); err != nil || !isNew {
			t.Fatalf("open %d: save of a doomed blob's content: new %v, %v", i, isNew, err)
		}
		r.Close()
	}
}
