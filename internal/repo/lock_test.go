package repo

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
)

func newLockRepo(t *testing.T) (backend.Backend, *Repository) {
	t.Helper()
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Init(context.Background(), be.WithoutSync(), []byte("pw"), Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return be.WithoutSync(), r
}

// TestLockConflicts: which lock modes may be held at once.
func TestLockConflicts(t *testing.T) {
	ctx := context.Background()
	modes := map[LockMode]string{LockShared: "shared", LockPrune: "prune", LockExclusive: "exclusive", LockSteady: "steady"}
	// ok[held][wanted]
	ok := map[LockMode]map[LockMode]bool{
		LockShared:    {LockShared: true, LockPrune: true, LockExclusive: false, LockSteady: true},
		LockPrune:     {LockShared: true, LockPrune: false, LockExclusive: false, LockSteady: false},
		LockExclusive: {LockShared: false, LockPrune: false, LockExclusive: false, LockSteady: false},
		LockSteady:    {LockShared: true, LockPrune: false, LockExclusive: false, LockSteady: true},
	}
	for held, row := range ok {
		for wanted, want := range row {
			t.Run(fmt.Sprintf("%s-then-%s", modes[held], modes[wanted]), func(t *testing.T) {
				_, r := newLockRepo(t)
				first, err := r.LockMode(ctx, held, "first")
				if err != nil {
					t.Fatal(err)
				}
				defer first.Unlock()
				second, err := r.LockMode(ctx, wanted, "second")
				if want {
					if err != nil {
						t.Fatalf("%s lock refused while a %s lock is held: %v", modes[wanted], modes[held], err)
					}
					second.Unlock()
					return
				}
				if !errors.Is(err, ErrLocked) {
					t.Fatalf("%s lock while a %s lock is held: err %v, want ErrLocked", modes[wanted], modes[held], err)
				}
				// The refused client removed its lock file again.
				locks, err := r.Locks(ctx)
				if err != nil || len(locks) != 1 {
					t.Fatalf("locks after a refusal: %v %v", locks, err)
				}
			})
		}
	}
}

// TestLockReadsReplacedIndex: a handle that read the index before a prune
// replaced an index file reads it again when it takes a lock, so it does
// not deduplicate against blobs whose packs are about to go.
func TestLockReadsReplacedIndex(t *testing.T) {
	ctx := context.Background()
	be, r := newLockRepo(t)
	store := func(r *Repository, text string) (blob.ID, string) {
		before := map[string]bool{}
		names, _ := r.IndexFiles(ctx)
		for _, n := range names {
			before[n] = true
		}
		id := r.Key().ID([]byte(text))
		if _, err := r.SaveBlob(ctx, blob.Data, id, []byte(text)); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		names, _ = r.IndexFiles(ctx)
		for _, n := range names {
			if !before[n] {
				return id, n
			}
		}
		t.Fatal("no new index file")
		return id, ""
	}
	gone, goneFile := store(r, "about to be pruned")
	kept, _ := store(r, "kept")
	other, err := Open(ctx, be, []byte("pw"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if !other.Index().Has(gone) {
		t.Fatal("fixture: blob not indexed")
	}
	// A lock with the index unchanged keeps what was read.
	lk, err := other.Lock(ctx, false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if !other.Index().Has(gone) {
		t.Fatal("index dropped a blob although no index file changed")
	}
	// What prune does: drop the index file naming the doomed pack.
	if err := be.Remove(ctx, backend.Handle{Type: backend.Index, Name: goneFile}); err != nil {
		t.Fatal(err)
	}
	lk, err = other.Lock(ctx, false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock()
	if other.Index().Has(gone) {
		t.Fatal("after a lock, the index still offers a blob whose index file is gone")
	}
	if !other.Index().Has(kept) {
		t.Fatal("after a lock, the index lost a blob whose index file remains")
	}
}

// TestLockCheck: a lock not refreshed for nearly the stale time is no
// longer trusted by its holder.
func TestLockCheck(t *testing.T) {
	_, r := newLockRepo(t)
	lk, err := r.Lock(context.Background(), false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock()
	if err := lk.Check(); err != nil {
		t.Fatalf("fresh lock: %v", err)
	}
	lk.mu.Lock()
	lk.written = time.Now().Add(-(lockStale - lockMargin + time.Minute))
	lk.mu.Unlock()
	if err := lk.Check(); err == nil {
		t.Fatal("a lock last written 26 minutes ago still counts as held")
	}
}

// TestDamagedLockFiles: a lock file that cannot be read (bit rot, or junk
// that is no lock at all) belongs to no live client, so it locks nobody
// out, and unlock removes it.
func TestDamagedLockFiles(t *testing.T) {
	ctx := context.Background()
	be, r := newLockRepo(t)
	for name, data := range map[string][]byte{
		"junk": []byte("not a lock"),
		// A valid name whose content does not match it.
		fmt.Sprintf("%064x", 7): []byte("bit rot"),
	} {
		if err := be.Save(ctx, backend.Handle{Type: backend.Lock, Name: name}, data); err != nil {
			t.Fatal(err)
		}
	}
	locks, err := r.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	damaged := 0
	for _, l := range locks {
		if l.Damaged != "" {
			damaged++
			if !l.Stale(time.Now()) {
				t.Fatalf("damaged lock %+v is not stale", l)
			}
		}
	}
	if damaged != 2 {
		t.Fatalf("%d damaged locks reported, want 2: %+v", damaged, locks)
	}
	lk, err := r.LockMode(ctx, LockExclusive, "test")
	if err != nil {
		t.Fatalf("an exclusive lock with damaged lock files about: %v", err)
	}
	lk.Unlock()
	if n, err := r.RemoveStaleLocks(ctx, false); err != nil || n != 2 {
		t.Fatalf("unlock removed %d, %v; want the 2 damaged lock files", n, err)
	}
	if locks, err := r.Locks(ctx); err != nil || len(locks) != 0 {
		t.Fatalf("locks left: %v %v", locks, err)
	}
}
