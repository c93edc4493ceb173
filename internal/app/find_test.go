package app_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/pattern"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// naiveFind is what Find must report for one snapshot: every entry the
// patterns and bounds match, found by listing the whole snapshot.
func naiveFind(t *testing.T, r *app.Repo, sn *snapshot.Snapshot, opt app.FindOptions) []string {
	t.Helper()
	pats, err := pattern.NewList("find", opt.Patterns, opt.IgnoreCase)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = r.Ls(context.Background(), app.LsOptions{Snapshot: sn.ID.String(), Recursive: true}, func(p string, n *snapshot.Node) error {
		mt := time.Unix(0, n.MTime)
		if pats.Match("/"+p) && (opt.Newer.IsZero() || mt.After(opt.Newer)) && (opt.Older.IsZero() || mt.Before(opt.Older)) {
			out = append(out, "/"+p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFindAcrossSnapshots: snapshots that share most of their trees.
// Find reads a shared subtree once and still reports its matches in
// every snapshot holding it, exactly as a search of each snapshot alone
// would, for name patterns (subtrees reused wherever they are, also
// after a move) and path patterns (reused only in the same place).
func TestFindAcrossSnapshots(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range []string{"docs/report.odt", "docs/notes.txt", "docs/old/report.odt", "work/a/report.ODT", "work/b/c/data.csv", "work/b/c/report.odt.bak"} {
		write(t, filepath.Join(src, p), "content of "+p)
	}
	// Two directories with the same contents: one tree at two places.
	for _, p := range []string{"same1/x.odt", "same2/x.odt"} {
		write(t, filepath.Join(src, p), "same")
		if err := os.Chtimes(filepath.Join(src, p), old.Add(time.Hour), old.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(filepath.Join(src, "docs/old/report.odt"), old, old); err != nil {
		t.Fatal(err)
	}
	r, err := app.Init(ctx, options(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	backup := func() {
		t.Helper()
		if _, err := r.Backup(ctx, app.BackupOptions{Paths: []string{src}, NoJournal: true}); err != nil {
			t.Fatal(err)
		}
	}
	backup()
	write(t, filepath.Join(src, "work/new.odt"), "new")
	backup()
	// A directory moved: the same tree at another path.
	if err := os.Rename(filepath.Join(src, "work/b"), filepath.Join(src, "moved")); err != nil {
		t.Fatal(err)
	}
	backup()
	if err := os.Remove(filepath.Join(src, "docs/report.odt")); err != nil {
		t.Fatal(err)
	}
	backup()
	groups, err := r.Snapshots(ctx, app.SnapshotsOptions{}, nil)
	if err != nil || len(groups) != 1 || len(groups[0].Snapshots) != 4 {
		t.Fatalf("snapshots: %+v %v", groups, err)
	}

	for _, opt := range []app.FindOptions{
		{Patterns: []string{"*.odt"}},
		{Patterns: []string{"report.odt"}, IgnoreCase: true},
		{Patterns: []string{"c/*", "new.odt"}},
		{Patterns: []string{"same1/*.odt"}},
		{Patterns: []string{src + "/work/**"}},
		{Patterns: []string{src + "/*/*.odt"}},
		{Patterns: []string{"*"}, Older: old.Add(time.Hour)},
		{Patterns: []string{"*.odt"}, Newer: old.Add(time.Hour)},
		{Patterns: []string{"*.pdf"}},
	} {
		t.Run(strings.Join(opt.Patterns, ","), func(t *testing.T) {
			got := map[string][]string{}
			last := ""
			res, err := r.Find(ctx, opt, func(sn *snapshot.Snapshot, m app.FindMatch) error {
				id := sn.ID.String()
				if id != last && got[id] != nil {
					t.Errorf("the matches of snapshot %s are not one after the other", sn.ID.Short())
				}
				last = id
				got[id] = append(got[id], m.Path)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, info := range groups[0].Snapshots {
				sn, err := r.Snapshot(ctx, info.ID.String(), snapshot.Filter{})
				if err != nil {
					t.Fatal(err)
				}
				want := naiveFind(t, r, sn, opt)
				total += len(want)
				if !reflect.DeepEqual(got[sn.ID.String()], want) {
					t.Errorf("snapshot %s:\n got %q\nwant %q", sn.ID.Short(), got[sn.ID.String()], want)
				}
			}
			if res.Snapshots != 4 || res.Matches != total || len(res.Errors) != 0 {
				t.Errorf("result %+v, want 4 snapshots and %d matches", res, total)
			}
			if (total == 0) != (opt.Patterns[0] == "*.pdf") {
				t.Errorf("%d matches in all", total)
			}
			if res.TreesReused == 0 {
				t.Errorf("no subtree reused: %+v", res)
			}
		})
	}

	// One snapshot, by ID and "latest"; the filters apply.
	var seen []string
	res, err := r.Find(ctx, app.FindOptions{Patterns: []string{"*.odt"}, Snapshots: []string{"latest", "latest"}}, func(sn *snapshot.Snapshot, m app.FindMatch) error {
		if !slices.Contains(seen, sn.ID.Short()) {
			seen = append(seen, sn.ID.Short())
		}
		if m.Type != snapshot.File || m.Size == 0 || m.MTime.IsZero() {
			t.Errorf("match %+v", m)
		}
		return nil
	})
	if err != nil || len(seen) != 1 || res.Snapshots != 1 {
		t.Errorf("--snapshot latest twice: %v %+v %v", seen, res, err)
	}
	if _, err := r.Find(ctx, app.FindOptions{Patterns: []string{"x"}, Snapshots: []string{"latest"}, Filter: snapshot.Filter{Hosts: []string{"nowhere"}}},
		func(*snapshot.Snapshot, app.FindMatch) error { return nil }); err == nil || !strings.Contains(err.Error(), "--snapshot latest") {
		t.Errorf("latest outside the filter: %v", err)
	}
	for _, tc := range []struct {
		opt  app.FindOptions
		want string
	}{
		{app.FindOptions{}, "give a pattern"},
		{app.FindOptions{Patterns: []string{"[x"}}, `find: pattern "[x": malformed`},
		{app.FindOptions{Patterns: []string{"x"}, Newer: old, Older: old}, "nothing can match"},
	} {
		if _, err := r.Find(ctx, tc.opt, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opt, err, tc.want)
		}
	}
}
