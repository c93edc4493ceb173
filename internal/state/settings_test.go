package state

import (
	"context"
	"strings"
	"testing"
	"time"
)

// storedSettings reads a set's settings row; there is no getter yet, but
// continuous mode and the web UI rely on what SaveSettings stores.
func storedSettings(t *testing.T, db *DB, set []byte) (settings string, updated time.Time) {
	t.Helper()
	var u string
	if err := db.db.QueryRow(`SELECT settings, updated FROM backup_sets WHERE backup_set = ?`, set).Scan(&settings, &u); err != nil {
		t.Fatal(err)
	}
	updated, err := time.Parse(time.RFC3339Nano, u)
	if err != nil {
		t.Fatalf("updated %q: %v", u, err)
	}
	return settings, updated
}

func wantLastSnapshot(t *testing.T, db *DB, set []byte, want string) {
	t.Helper()
	got, err := db.LastSnapshot(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("LastSnapshot(%q) = %q, want %q", set, got, want)
	}
}

// TestSaveSettings: the last save of each set wins, with its settings,
// time and snapshot; sets are separate.
func TestSaveSettings(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	a, b := []byte("set a"), []byte("set b")
	wantLastSnapshot(t, db, a, "")

	before := time.Now()
	if err := db.SaveSettings(ctx, a, []byte(`{"paths":["/home"]}`), "snap-1"); err != nil {
		t.Fatal(err)
	}
	wantLastSnapshot(t, db, a, "snap-1")
	wantLastSnapshot(t, db, b, "")
	settings, updated := storedSettings(t, db, a)
	if settings != `{"paths":["/home"]}` {
		t.Fatalf("settings %s", settings)
	}
	if updated.Before(before) || updated.After(time.Now()) {
		t.Fatalf("updated %v, not between %v and now", updated, before)
	}

	if err := db.SaveSettings(ctx, b, []byte(`{"paths":["/srv"]}`), "snap-b"); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveSettings(ctx, a, []byte(`{"paths":["/home","/etc"]}`), "snap-2"); err != nil {
		t.Fatal(err)
	}
	wantLastSnapshot(t, db, a, "snap-2")
	wantLastSnapshot(t, db, b, "snap-b")
	if settings, _ := storedSettings(t, db, a); settings != `{"paths":["/home","/etc"]}` {
		t.Fatalf("settings after the second save: %s", settings)
	}
	if settings, _ := storedSettings(t, db, b); settings != `{"paths":["/srv"]}` {
		t.Fatalf("other set's settings: %s", settings)
	}

	// A save without a snapshot clears it: the next backup lists the
	// repository for its parent.
	if err := db.SaveSettings(ctx, a, nil, ""); err != nil {
		t.Fatal(err)
	}
	wantLastSnapshot(t, db, a, "")
	wantLastSnapshot(t, db, b, "snap-b")
}

// TestMeta: named values are stored, replaced and read back; a missing
// one is "".
func TestMeta(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	steps := []struct {
		key, value string
		want       map[string]string
	}{
		{"a", "1", map[string]string{"a": "1", "b": "", "A": ""}},
		{"b", "two words\nand a line", map[string]string{"a": "1", "b": "two words\nand a line"}},
		{"a", "replaced", map[string]string{"a": "replaced", "b": "two words\nand a line"}},
		{"", "empty key", map[string]string{"": "empty key", "a": "replaced"}},
		{"b", "", map[string]string{"b": "", "a": "replaced"}},
		{"big", strings.Repeat("x", 1<<16), map[string]string{"big": strings.Repeat("x", 1<<16)}},
	}
	if v, err := db.Meta(ctx, "a"); err != nil || v != "" {
		t.Fatalf("Meta of an empty database = %q, %v", v, err)
	}
	for i, s := range steps {
		if err := db.SetMeta(ctx, s.key, s.value); err != nil {
			t.Fatal(err)
		}
		for k, want := range s.want {
			got, err := db.Meta(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("step %d: Meta(%q) = %.40q, want %.40q", i, k, got, want)
			}
		}
	}
}

// TestRebuilt: the rebuild time is zero until marked, then kept to the
// second (it is only shown to the minute).
func TestRebuilt(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	got, err := db.Rebuilt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsZero() {
		t.Fatalf("Rebuilt before any rebuild = %v, want the zero time", got)
	}
	for _, at := range []time.Time{
		time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC),
		time.Date(2031, 1, 2, 3, 4, 5, 999999999, time.FixedZone("west", -7*3600)),
		time.Now(),
	} {
		if err := db.MarkRebuilt(ctx, at); err != nil {
			t.Fatal(err)
		}
		got, err := db.Rebuilt(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(at.Truncate(time.Second)) {
			t.Fatalf("Rebuilt = %v, want %v", got, at.Truncate(time.Second))
		}
	}
}

// TestRebuiltDamaged: an unreadable rebuild time is an error naming the
// value, not a silent zero.
func TestRebuiltDamaged(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	if err := db.SetMeta(ctx, "rebuilt", "yesterday"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Rebuilt(ctx); err == nil || !strings.Contains(err.Error(), `"yesterday"`) {
		t.Fatalf("Rebuilt of a damaged value: %v", err)
	}
}
