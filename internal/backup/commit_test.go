package backup_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// TestStateWriteFailsAfterSnapshot makes each write to the state database
// after the snapshot fail in turn (a trigger refuses the table's inserts):
// the backup returns a *CommittedError naming the step, the saved
// snapshot and what the next backup pays, and the snapshot is in the
// repository.
func TestStateWriteFailsAfterSnapshot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("alpha"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A hard link, so that the backup writes hard-link records.
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "b")); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	be, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be.WithoutSync(), []byte("pw"), repo.Options{KDF: func() (crypto.KDFParams, error) {
		p, err := crypto.DefaultKDFParams()
		p.Time, p.Memory = 1, 8*1024
		return p, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dbPath := filepath.Join(dir, "state.db")
	st, err := state.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var last *snapshot.Snapshot
	for _, tc := range []struct {
		table, step, next string
	}{
		{"links", backup.StepLinks, "the next backup of these paths reads every file"},
		{"dirstats", backup.StepStatCache, "the next backup of these paths reads every file"},
		{"backup_sets", backup.StepSettings, "the next backup of these paths may read again what this one read, and `tidemark history` does not list this backup"},
		{"backups", backup.StepHistory, "`tidemark history` does not list this backup"},
	} {
		if _, err := db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON ` + tc.table + ` BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
			t.Fatal(err)
		}
		_, err := backup.Run(ctx, r, st, backup.Options{Paths: []string{src}, Host: "h", RacyWindow: time.Millisecond})
		if _, derr := db.Exec(`DROP TRIGGER refuse`); derr != nil {
			t.Fatal(derr)
		}
		var ce *backup.CommittedError
		if !errors.As(err, &ce) {
			t.Fatalf("%s refused: %v, want a CommittedError", tc.table, err)
		}
		if ce.Step != tc.step || ce.Next != tc.next {
			t.Errorf("%s refused: step %q, next %q; want %q, %q", tc.table, ce.Step, ce.Next, tc.step, tc.next)
		}
		id := ce.Result.Snapshot.ID
		if _, err := snapshot.Load(ctx, r, id); err != nil {
			t.Fatalf("%s refused: the snapshot is not saved: %v", tc.table, err)
		}
		want := "snapshot " + id.Short() + " saved, but recording it in the local state database failed: " + tc.step + ": "
		if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, "database or disk is full") || !strings.HasSuffix(msg, "; "+tc.next) {
			t.Errorf("%s refused: %q, want %q ... %q", tc.table, msg, want, tc.next)
		}
		ce.Database = dbPath
		if msg := err.Error(); !strings.Contains(msg, "state database "+dbPath+" failed: ") {
			t.Errorf("with the database named: %q", msg)
		}
		last = ce.Result.Snapshot
	}
	// Nothing refused: the backup completes, and its parent is the last
	// snapshot whose settings were recorded (only the history failed).
	res, err := backup.Run(ctx, r, st, backup.Options{Paths: []string{src}, Host: "h", RacyWindow: time.Millisecond})
	if err != nil || res.Parent == nil || res.Parent.ID != last.ID {
		t.Fatalf("backup after the failures: %+v %v", res, err)
	}

	// The change journal's release, after the state database.
	_, err = backup.Run(ctx, r, st, backup.Options{Paths: []string{src}, Host: "h", RacyWindow: time.Millisecond, Source: refusingSource{}})
	var ce *backup.CommittedError
	if !errors.As(err, &ce) || ce.Step != backup.StepRelease ||
		!strings.Contains(err.Error(), " saved, but recording it in the change journal failed: release journal records: journal release: /state/sets: no space left on device; ") {
		t.Fatalf("release refused: %v", err)
	}
}

// refusingSource is a change source whose fence works and whose release
// fails.
type refusingSource struct{}

func (refusingSource) Kind() string     { return changes.KindJournal }
func (refusingSource) Describe() string { return "change journal" }
func (refusingSource) Fence(context.Context, []string) (changes.Cursor, error) {
	return changes.Cursor{Kind: "inotify", Epoch: "e", Seq: 1}, nil
}
func (refusingSource) Since(context.Context, changes.Cursor, changes.Cursor, []string) (changes.Delta, error) {
	return changes.Delta{}, &changes.GapError{Reason: "not used"}
}
func (refusingSource) Release(string, changes.Cursor) error {
	return errors.New("journal release: /state/sets: no space left on device")
}
