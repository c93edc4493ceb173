package app_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/retention"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// TestFiltersAndTags: two backup sets in one repository. "latest" resolves
// within the filter, listings group and filter, tag writes a replacement
// record with the same tree and time and removes the old one, and the
// next backup of the set still finds its parent.
func TestFiltersAndTags(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	etc, usr := filepath.Join(dir, "etc"), filepath.Join(dir, "usr")
	write(t, filepath.Join(etc, "passwd"), "root")
	write(t, filepath.Join(usr, "bin"), "tools")
	r, err := app.Init(ctx, options(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	backup := func(src string, tags ...string) *app.BackupResult {
		t.Helper()
		res, err := r.Backup(ctx, app.BackupOptions{Paths: []string{src}, Tags: tags, NoJournal: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	etc1 := backup(etc, "daily")
	write(t, filepath.Join(etc, "passwd"), "root, changed")
	etc2 := backup(etc, "daily")
	usr1 := backup(usr)
	onlyEtc := snapshot.Filter{Paths: []string{etc}}

	// "latest" within --path is the newest of that set, not the last run.
	sn, err := r.Snapshot(ctx, "latest", onlyEtc)
	if err != nil || sn.ID != etc2.ID {
		t.Fatalf("latest --path etc: %v %v", sn, err)
	}
	target := filepath.Join(dir, "restore")
	res, err := r.Restore(ctx, app.RestoreOptions{Snapshot: "latest", Filter: onlyEtc, Options: restore.Options{Target: target}})
	if err != nil || res.Snapshot != etc2.ID {
		t.Fatalf("restore latest --path etc: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, etc, "passwd")); string(b) != "root, changed" {
		t.Fatalf("restored %q", b)
	}
	// Again into the same place: nothing to write, no error.
	res, err = r.Restore(ctx, app.RestoreOptions{Snapshot: "latest", Filter: onlyEtc, Options: restore.Options{Target: target}})
	if err != nil || len(res.Errors) != 0 || res.Files != 0 || res.Unchanged != 1 {
		t.Fatalf("restore again: %+v %v", res, err)
	}
	if _, err := r.Snapshot(ctx, usr1.ID.String(), onlyEtc); err == nil {
		t.Fatal("an ID outside the filter was accepted")
	}

	groups, err := r.Snapshots(ctx, app.SnapshotsOptions{GroupBy: "paths"}, nil)
	if err != nil || len(groups) != 2 {
		t.Fatalf("snapshots --group-by paths: %+v %v", groups, err)
	}
	for _, g := range groups {
		want := map[string]int{etc: 2, usr: 1}[g.Key.Paths[0]]
		if len(g.Snapshots) != want || g.Key.Host != "" {
			t.Errorf("group %s: %d snapshots, want %d", g.Key, len(g.Snapshots), want)
		}
	}
	groups, err = r.Snapshots(ctx, app.SnapshotsOptions{Filter: snapshot.Filter{Tags: [][]string{{"daily"}}}}, nil)
	if err != nil || len(groups) != 1 || len(groups[0].Snapshots) != 2 {
		t.Fatalf("snapshots --tag daily: %+v %v", groups, err)
	}

	// Tag: a new record with the same tree, time and scan; the old one goes.
	if err := (app.TagOptions{Set: []string{"a"}, Replace: true, Add: []string{"b"}}).Validate(); err == nil {
		t.Fatal("--set with --add accepted")
	}
	if err := (app.TagOptions{}).Validate(); err == nil {
		t.Fatal("tag without a change accepted")
	}
	tr, err := r.Tag(ctx, app.TagOptions{Snapshots: []string{"latest"}, Filter: onlyEtc, Add: []string{"keep", "daily"}}, nil)
	if err != nil || len(tr.Changed) != 1 || tr.Changed[0].Old != etc2.ID || !slices.Equal(tr.Changed[0].Tags, []string{"daily", "keep"}) {
		t.Fatalf("tag --add: %+v %v", tr, err)
	}
	retagged := tr.Changed[0].New
	sn, err = r.Snapshot(ctx, retagged.String(), snapshot.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Tree != etc2.Tree || !sn.Time.Equal(etc2.Snapshot.Time) || sn.Original == nil || *sn.Original != etc2.ID ||
		sn.Scan.Mode != etc2.Scan.Mode || sn.Totals != etc2.Totals || sn.Parent == nil || *sn.Parent != etc1.ID {
		t.Fatalf("retagged record %+v, from %+v", sn, etc2.Snapshot)
	}
	if _, err := r.Snapshot(ctx, etc2.ID.String(), snapshot.Filter{}); err == nil {
		t.Fatal("the old record is still there")
	}
	// Nothing to change: nothing written.
	tr, err = r.Tag(ctx, app.TagOptions{Filter: snapshot.Filter{Tags: [][]string{{"keep"}}}, Add: []string{"keep"}}, nil)
	if err != nil || len(tr.Changed) != 0 || tr.Unchanged != 1 {
		t.Fatalf("tag without a change: %+v %v", tr, err)
	}
	// A second change keeps naming the first record.
	tr, err = r.Tag(ctx, app.TagOptions{Snapshots: []string{retagged.String()[:8]}, Replace: true}, nil)
	if err != nil || len(tr.Changed) != 1 || tr.Changed[0].Tags != nil {
		t.Fatalf("tag --set '': %+v %v", tr, err)
	}
	if sn, err = r.Snapshot(ctx, tr.Changed[0].New.String(), snapshot.Filter{}); err != nil || *sn.Original != etc2.ID || sn.Tags != nil {
		t.Fatalf("record after a second change: %+v %v", sn, err)
	}
	// Every snapshot the filter matches (no IDs): both /etc ones.
	tr, err = r.Tag(ctx, app.TagOptions{Filter: onlyEtc, Add: []string{"etc"}}, nil)
	if err != nil || len(tr.Changed) != 2 {
		t.Fatalf("tag --path etc --add etc: %+v %v", tr, err)
	}

	// The next backup of the set takes the retagged record as its parent.
	next := backup(etc)
	if next.Parent == nil || *next.Parent != tr.Changed[1].New || next.Scan.Mode != snapshot.ModeParentAssisted {
		t.Fatalf("backup after tag: parent %v (want %s), scan %+v", next.Parent, tr.Changed[1].New.Short(), next.Scan)
	}

	// forget with a filter judges only what it matches.
	fr, err := r.Forget(ctx, app.ForgetOptions{Policy: retention.Policy{Last: 1}, GroupBy: "", Filter: onlyEtc, DryRun: true}, nil)
	if err != nil || len(fr.Verdicts) != 3 || fr.Forgotten != 2 {
		t.Fatalf("forget --path etc --keep-last 1: %+v %v", fr, err)
	}
	if err := (app.ForgetOptions{Snapshots: []string{"abcd"}, Filter: onlyEtc}).Validate(); err == nil || !strings.Contains(err.Error(), "--path") {
		t.Fatalf("forget with IDs and a filter: %v", err)
	}
}
