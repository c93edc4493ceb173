//go:build linux

package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// TestDeclineStartsAfresh: when an incremental scan meets a changed
// hard-linked file it gives up; the full scan that follows is announced
// with the reason, and the progress counters and the summary describe it
// alone, not the attempt before.
func TestDeclineStartsAfresh(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := newRepo(t, dir)
	db, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src := filepath.Join(dir, "src")
	var changed []string
	for _, name := range []string{"a/1", "a/2", "a/3", "b/4", "zz/linked"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat("old ", 1000)), 0o644)
		changed = append(changed, p)
	}
	if err := os.Link(filepath.Join(src, "zz/linked"), filepath.Join(src, "zz/second")); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Run(ctx, r, db, backup.Options{Paths: []string{src}, RacyWindow: racy}); err != nil {
		t.Fatal(err)
	}
	for _, p := range changed {
		os.WriteFile(p, []byte(strings.Repeat("new ", 2000)), 0o644)
	}
	prog := &archive.Progress{}
	var plans []backup.Plan
	res, err := backup.Run(ctx, r, db, backup.Options{Paths: []string{src}, RacyWindow: racy, Progress: prog,
		Source:  changes.ExternalList("test", changed),
		Started: func(p backup.Plan) { plans = append(plans, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 2 || plans[0].Mode != snapshot.ModeExternal || plans[1].Mode != snapshot.ModeParentAssisted ||
		!strings.Contains(plans[1].Declined, "hard-linked file changed") || plans[0].Declined != "" {
		t.Fatalf("plans %+v: want the list-driven one, then the full scan saying why", plans)
	}
	sn := res.Snapshot
	if sn.Scan.Mode != plans[1].Mode || sn.Scan.Reason != plans[1].Reason {
		t.Fatalf("snapshot scan %+v, announced %+v", sn.Scan, plans[1])
	}
	// Six names of 8000 bytes were read: the five files and the second
	// link; every file was walked once.
	if sn.Summary.BytesRead != 6*8000 || prog.BytesRead.Load() != sn.Summary.BytesRead ||
		prog.Files.Load() != sn.Totals.Files || prog.Bytes.Load() != sn.Totals.Bytes {
		t.Fatalf("summary read %d, progress read %d, files %d of %d, bytes %d of %d", sn.Summary.BytesRead, prog.BytesRead.Load(),
			prog.Files.Load(), sn.Totals.Files, prog.Bytes.Load(), sn.Totals.Bytes)
	}
}
