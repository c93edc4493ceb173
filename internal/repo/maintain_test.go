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

// afterIndexList is a backend that runs fn once, right after the first
// listing of index files made while it is armed.
type afterIndexList struct {
	backend.Backend
	armed bool
	fn    func()
}

func (b *afterIndexList) List(ctx context.Context, t backend.FileType, fn func(string, int64) error) error {
	err := b.Backend.List(ctx, t, fn)
	if t == backend.Index && b.armed {
		b.armed = false
		b.fn()
	}
	return err
}

// TestIndexReplacedWhileRead: a prune writes the index files replacing
// old ones, then removes the old ones. A client that listed an old one
// before it was removed finds it gone when it reads it, and must list
// again (finding the replacement) instead of failing, both when opening
// and when taking a lock reads the index again.
func TestIndexReplacedWhileRead(t *testing.T) {
	ctx := context.Background()
	l, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	be := l.WithoutSync()
	w, err := Init(ctx, be, []byte("pw"), Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Two index files, each naming one pack of one blob.
	var ids []blob.ID
	var files []string
	var packs []IndexPack
	for _, text := range []string{"first", "second"} {
		id := w.Key().ID([]byte(text))
		if _, err := w.SaveBlob(ctx, blob.Data, id, []byte(text)); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		written := w.WrittenIndexFiles()
		f := written[len(written)-1]
		ips, err := w.LoadIndexFile(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		ids, files, packs = append(ids, id), append(files, f), append(packs, ips...)
	}
	stored := map[string][]byte{}
	for _, n := range files {
		if stored[n], err = backend.LoadAll(ctx, be, backend.Handle{Type: backend.Index, Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	// replace does what a prune does: write the consolidated index file,
	// then remove the given old ones.
	replaced := false
	replace := func(old ...string) {
		if !replaced {
			if _, err := w.SaveIndexFiles(ctx, packs, false); err != nil {
				t.Fatal(err)
			}
			replaced = true
		}
		for _, n := range old {
			if err := be.Remove(ctx, backend.Handle{Type: backend.Index, Name: n}); err != nil {
				t.Fatal(err)
			}
		}
	}
	findsAll := func(what string, r *Repository) {
		t.Helper()
		for _, id := range ids {
			if !r.Index().Has(id) {
				t.Fatalf("%s: blob %s is not in the index", what, id.Short())
			}
		}
	}

	// The old index files are removed after the client listed them.
	hooked := &afterIndexList{Backend: be, armed: true, fn: func() { replace(files...) }}
	r, err := Open(ctx, hooked, []byte("pw"), Options{})
	if err != nil {
		t.Fatalf("open while the index is replaced: %v", err)
	}
	defer r.Close()
	findsAll("open", r)

	// A client read both old files; when it locks, one is gone, so it
	// reads the index again, and the other goes after it listed them.
	for _, n := range files {
		if err := be.Save(ctx, backend.Handle{Type: backend.Index, Name: n}, stored[n]); err != nil {
			t.Fatal(err)
		}
	}
	hooked = &afterIndexList{Backend: be}
	r2, err := Open(ctx, hooked, []byte("pw"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	replace(files[0])
	hooked.armed, hooked.fn = true, func() { replace(files[1]) }
	lk, err := r2.LockMode(ctx, LockShared, "backup")
	if err != nil {
		t.Fatalf("lock while the index is replaced: %v", err)
	}
	defer lk.Unlock()
	findsAll("lock", r2)
}
