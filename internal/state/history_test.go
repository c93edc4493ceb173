package state

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

// sameBackup compares two history rows field by field, times by instant
// (History returns them in UTC) and the duration at the schema's
// millisecond resolution.
func sameBackup(t *testing.T, got, want Backup) {
	t.Helper()
	if !got.Time.Equal(want.Time) {
		t.Errorf("time %v, want %v", got.Time, want.Time)
	}
	if got.Duration != want.Duration.Truncate(time.Millisecond) {
		t.Errorf("duration %v, want %v", got.Duration, want.Duration.Truncate(time.Millisecond))
	}
	if len(got.Roots) != len(want.Roots) || (len(want.Roots) > 0 && !reflect.DeepEqual(got.Roots, want.Roots)) {
		t.Errorf("roots %q, want %q", got.Roots, want.Roots)
	}
	got.Time, got.Duration, got.Roots = want.Time, want.Duration, want.Roots
	if !reflect.DeepEqual(got, want) {
		t.Errorf("history row\n got %+v\nwant %+v", got, want)
	}
}

func TestHistoryEmpty(t *testing.T) {
	db, _ := openTemp(t)
	for _, n := range []int{0, 1, 20} {
		got, err := db.History(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Fatalf("History(%d) of an empty database: %+v", n, got)
		}
	}
}

// TestHistoryRoundTrip: every field written by RecordBackup comes back
// from History.
func TestHistoryRoundTrip(t *testing.T) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	cases := []struct {
		name string
		b    Backup
	}{
		{"all fields", Backup{
			Snapshot: "3f1c0ad7e2b94c5a8d6f0e1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f",
			Time:     time.Date(2031, 7, 14, 3, 4, 5, 123456789, time.UTC),
			Host:     "build-01", Roots: []string{"/home/ann", "/etc"},
			Mode: "journal", Reason: "journal covers every change since the parent",
			FilesNew: 1, FilesChanged: 2, FilesUnchanged: 3, BytesRead: 4, BytesAdded: 5,
			TotalBytes: 6, TotalFiles: 7, Errors: 8, Duration: 90 * time.Second,
		}},
		// The time is an instant: another zone and nanoseconds survive.
		{"time in another zone", Backup{Time: time.Date(2029, 12, 31, 23, 59, 59, 1, zone), Roots: []string{"/"}}},
		{"zero time", Backup{Roots: []string{"/"}}},
		// The counts are uint64 stored in SQLite's int64: the whole range
		// must come back, not only what fits in int64.
		{"largest counts", Backup{
			Time: time.Unix(1e9, 0), Roots: []string{"/"},
			FilesNew: math.MaxUint64, FilesChanged: math.MaxInt64, FilesUnchanged: math.MaxInt64 + 1,
			BytesRead: math.MaxUint64 - 1, BytesAdded: 1 << 63, TotalBytes: math.MaxUint64,
			TotalFiles: math.MaxUint32 + 1, Errors: math.MaxUint64,
		}},
		{"roots with odd names", Backup{Time: time.Unix(1, 0), Roots: []string{"/a b", "/ü/\"q\"", "/x\ny", ""}}},
		{"no roots", Backup{Time: time.Unix(2, 0)}},
		{"empty roots", Backup{Time: time.Unix(3, 0), Roots: []string{}}},
		{"text with quotes", Backup{Time: time.Unix(4, 0), Host: "o'brien", Mode: "full", Reason: `"--read-all": every file; it's read`}},
		// The schema keeps milliseconds: finer durations are truncated.
		{"sub-millisecond duration", Backup{Time: time.Unix(5, 0), Duration: 2*time.Second + 1500*time.Microsecond}},
		{"long duration", Backup{Time: time.Unix(6, 0), Duration: 400 * 24 * time.Hour}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			db, _ := openTemp(t)
			if err := db.RecordBackup(ctx, c.b); err != nil {
				t.Fatal(err)
			}
			got, err := db.History(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d rows, want 1", len(got))
			}
			sameBackup(t, got[0], c.b)
		})
	}
}

// TestHistoryOrderAndLimit: History returns the n most recently recorded
// backups, the last recorded first.
func TestHistoryOrderAndLimit(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const recorded = 5
	var all []Backup
	for i := range recorded {
		b := Backup{Snapshot: fmt.Sprintf("snap-%d", i), Time: t0.Add(time.Duration(i) * time.Hour), Host: "h",
			Roots: []string{fmt.Sprintf("/r%d", i)}, FilesNew: uint64(i), Duration: time.Duration(i) * time.Second}
		if err := db.RecordBackup(ctx, b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b)
	}
	for _, c := range []struct {
		n, want int
	}{
		{0, 0},
		{1, 1},
		{3, 3},
		{recorded, recorded},
		{recorded + 10, recorded},
	} {
		got, err := db.History(ctx, c.n)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != c.want {
			t.Fatalf("History(%d): %d rows, want %d", c.n, len(got), c.want)
		}
		for i, b := range got {
			sameBackup(t, b, all[recorded-1-i])
		}
	}
}

// TestHistoryOrderIsRecordingOrder: "newest" means recorded last, not the
// latest Time (cache rebuild records snapshots oldest first, backups
// record as they finish).
func TestHistoryOrderIsRecordingOrder(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, at := range []time.Time{t0.Add(time.Hour), t0, t0.Add(2 * time.Hour)} {
		if err := db.RecordBackup(ctx, Backup{Snapshot: fmt.Sprint(i), Time: at}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.History(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, b := range got {
		order = append(order, b.Snapshot)
	}
	if want := []string{"2", "1", "0"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("history order %q, want %q", order, want)
	}
}

// TestRecordBackupCancelled: a cancelled context fails the write and
// records nothing.
func TestRecordBackupCancelled(t *testing.T) {
	db, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.RecordBackup(ctx, Backup{Snapshot: "x", Time: time.Now()}); err == nil {
		t.Fatal("RecordBackup with a cancelled context succeeded")
	}
	if _, err := db.History(ctx, 1); err == nil {
		t.Fatal("History with a cancelled context succeeded")
	}
	got, err := db.History(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("cancelled RecordBackup left %+v", got)
	}
}
