//go:build linux

package backup_test

import (
	"context"
	"fmt"
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

// TestDeclineStartsAfresh: when an incremental scan meets changed
// hard-linked files it lists the directories of their other names and
// scans again; a chain of them, each leading to the next, needs more
// rounds than a scan allows, and it gives up. The full scan that follows
// is announced with the reason, and the progress counters and the summary
// describe it alone, not the attempts before.
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
	var changed, all []string
	for _, name := range []string{"a/1", "a/2", "a/3", "b/4"} {
		changed = append(changed, filepath.Join(src, name))
	}
	all = append(all, changed...)
	// l0 has names in z0 and z1, l1 in z1 and z2, and so on.
	const chain = 6
	for i := range chain {
		all = append(all, filepath.Join(src, fmt.Sprintf("z%d", i), fmt.Sprintf("l%d", i)))
	}
	for _, p := range all {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat("old ", 1000)), 0o644)
	}
	for i := range chain {
		next := filepath.Join(src, fmt.Sprintf("z%d", i+1))
		os.MkdirAll(next, 0o755)
		if err := os.Link(all[len(changed)+i], filepath.Join(next, fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := backup.Run(ctx, r, db, backup.Options{Paths: []string{src}, RacyWindow: racy}); err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		os.WriteFile(p, []byte(strings.Repeat("new ", 2000)), 0o644)
	}
	prog := &archive.Progress{}
	var plans []backup.Plan
	res, err := backup.Run(ctx, r, db, backup.Options{Paths: []string{src}, RacyWindow: racy, Progress: prog,
		Source:  changes.ExternalList("test", append(changed, all[len(changed)])),
		Started: func(p backup.Plan) { plans = append(plans, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 2 || plans[0].Mode != snapshot.ModeExternal || plans[1].Mode != snapshot.ModeParentAssisted ||
		!strings.Contains(plans[1].Declined, "were still not all listed after") || plans[0].Declined != "" {
		t.Fatalf("plans %+v: want the list-driven one, then the full scan saying why", plans)
	}
	sn := res.Snapshot
	if sn.Scan.Mode != plans[1].Mode || sn.Scan.Reason != plans[1].Reason {
		t.Fatalf("snapshot scan %+v, announced %+v", sn.Scan, plans[1])
	}
	// Sixteen names of 8000 bytes were read: the four files and the two
	// names of each linked one; every file was walked once.
	if sn.Summary.BytesRead != (4+2*chain)*8000 || prog.BytesRead.Load() != sn.Summary.BytesRead ||
		prog.Files.Load() != sn.Totals.Files || prog.Bytes.Load() != sn.Totals.Bytes {
		t.Fatalf("summary read %d, progress read %d, files %d of %d, bytes %d of %d", sn.Summary.BytesRead, prog.BytesRead.Load(),
			prog.Files.Load(), sn.Totals.Files, prog.Bytes.Load(), sn.Totals.Bytes)
	}
}

// TestUnplaceableLinksScanFully: a file no hard-link record holds, which
// the stat cache never met, gained a name outside the backup. With a stat
// cache known to describe the parent whole, it was not in the parent and
// its names inside are all in listed directories: a journal scan. Without
// that knowledge (a state database from before it was recorded, or a
// backup whose stat records could not all be written), the scan meets one
// of its two names and scans fully, saying why.
func TestUnplaceableLinksScanFully(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := newRepo(t, dir)
	db, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "a"), 0o755)
	host := "h"
	if _, err := backup.Run(ctx, r, db, backup.Options{Paths: []string{src}, Host: host, RacyWindow: racy}); err != nil {
		t.Fatal(err)
	}
	for i, complete := range []bool{true, false} {
		fresh := filepath.Join(src, "a", fmt.Sprintf("fresh%d", i))
		os.WriteFile(fresh, []byte("new"), 0o644)
		if err := os.Link(fresh, filepath.Join(dir, fmt.Sprintf("outside%d", i))); err != nil {
			t.Fatal(err)
		}
		if !complete {
			if err := db.SetStatsComplete(ctx, backup.StatSet(host, []string{src}), ""); err != nil {
				t.Fatal(err)
			}
		}
		res, err := backup.Run(ctx, r, db, backup.Options{Paths: []string{src}, Host: host, RacyWindow: racy,
			Source: changes.ExternalList("test", []string{fresh})})
		if err != nil {
			t.Fatal(err)
		}
		scan := res.Snapshot.Scan
		switch {
		case complete && scan.Mode != snapshot.ModeExternal:
			t.Fatalf("complete stat cache: %+v", scan)
		case !complete && (scan.Mode != snapshot.ModeParentAssisted || !strings.Contains(scan.Reason, "has 2 links, 1 of them where this backup can place its names")):
			t.Fatalf("stat cache not known complete: %+v", scan)
		}
	}
}
