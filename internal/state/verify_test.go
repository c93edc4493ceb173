package state

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// TestVerifyLedgerBudget: reservations succeed while they fit both
// limits, only downloads inside the windows count, and a settled size
// replaces the reserved one.
func TestVerifyLedgerBudget(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	lim := func(now time.Time) VerifyLimits {
		return VerifyLimits{BytesSince: now.Add(-24 * time.Hour), MaxBytes: 100, RequestsSince: now.Add(-time.Hour), MaxRequests: 3}
	}
	reserve := func(now time.Time, bytes int64) (int64, bool) {
		t.Helper()
		id, ok, err := db.ReserveVerifyDownload(ctx, "p", bytes, now, lim(now))
		if err != nil {
			t.Fatal(err)
		}
		return id, ok
	}
	if _, ok := reserve(t0, 60); !ok {
		t.Fatal("first download refused")
	}
	if _, ok := reserve(t0, 41); ok {
		t.Fatal("download beyond the byte budget accepted")
	}
	id, ok := reserve(t0, 40)
	if !ok {
		t.Fatal("download filling the budget exactly refused")
	}
	if err := db.SettleVerifyDownload(ctx, id, 10); err != nil {
		t.Fatal(err)
	}
	if b, n, err := db.VerifySpent(ctx, t0.Add(-time.Hour)); err != nil || b != 70 || n != 2 {
		t.Fatalf("spent %d bytes in %d requests (%v), want 70 in 2", b, n, err)
	}
	if _, ok := reserve(t0, 30); !ok {
		t.Fatal("download into the settled room refused")
	}
	if _, ok := reserve(t0, 0); ok {
		t.Fatal("fourth request within the hour accepted")
	}
	// An hour later the requests are free again, the bytes are not.
	t1 := t0.Add(time.Hour)
	if _, ok := reserve(t1, 1); ok {
		t.Fatal("byte budget ignored after the request window moved on")
	}
	if _, ok := reserve(t1, 0); !ok {
		t.Fatal("request refused after its window moved on")
	}
	// A day after the first downloads (the window is open at its start)
	// the whole byte budget is back.
	t2 := t0.Add(24 * time.Hour)
	if _, ok := reserve(t2, 100); !ok {
		t.Fatal("byte budget not renewed after a day")
	}
	if err := db.PruneVerifyDownloads(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if b, n, err := db.VerifySpent(ctx, time.Time{}); err != nil || b != 100 || n != 2 {
		t.Fatalf("after pruning: %d bytes in %d requests (%v), want 100 in 2", b, n, err)
	}
}

// TestVerifyLedgerConcurrent: processes sharing the database (here two
// handles on one file) never reserve more than the budget together.
func TestVerifyLedgerConcurrent(t *testing.T) {
	ctx := context.Background()
	_, path := openTemp(t)
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	first, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	now := time.Now()
	lim := VerifyLimits{BytesSince: now.Add(-time.Hour), MaxBytes: 1000, RequestsSince: now.Add(-time.Hour), MaxRequests: 1000}
	var wg sync.WaitGroup
	for w, db := range []*DB{first, other, first, other} {
		wg.Go(func() {
			for i := range 50 {
				if _, _, err := db.ReserveVerifyDownload(ctx, fmt.Sprintf("w%d-%d", w, i), 7, now, lim); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b, n, err := first.VerifySpent(ctx, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if b > 1000 || b < 1000-7+1 || n != b/7 {
		t.Fatalf("reserved %d bytes in %d requests; want at most 1000 and no room left for another 7", b, n)
	}
}

// TestVerifiedPacks: the last verification of each pack is kept, with its
// damage, until the pack is forgotten.
func TestVerifiedPacks(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.MarkVerified(ctx, "a", t0, ""))
	must(db.MarkVerified(ctx, "b", t0, "corrupt-blob: blob 1234"))
	must(db.MarkVerified(ctx, "a", t0.Add(time.Hour), ""))
	got, err := db.VerifiedPacks(ctx)
	must(err)
	if len(got) != 2 || !got["a"].At.Equal(t0.Add(time.Hour)) || got["a"].Problem != "" ||
		!got["b"].At.Equal(t0) || got["b"].Problem != "corrupt-blob: blob 1234" {
		t.Fatalf("verified packs: %+v", got)
	}
	must(db.ForgetVerified(ctx, []string{"b", "gone"}))
	got, err = db.VerifiedPacks(ctx)
	must(err)
	if _, ok := got["b"]; ok || len(got) != 1 {
		t.Fatalf("after forgetting b: %+v", got)
	}
}
