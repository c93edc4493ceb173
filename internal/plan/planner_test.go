package plan

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// scripted is a change source whose answers a test sets; the real sources
// (the watcher's journal, external lists) have their own tests, this one
// exercises the rules applied to any answer.
type scripted struct {
	fence    changes.Cursor
	fenceErr error
	delta    changes.Delta
	sinceErr error
	// from is the cursor Since was asked about.
	from *changes.Cursor
}

func (s *scripted) Kind() string     { return changes.KindJournal }
func (s *scripted) Describe() string { return "change journal" }
func (s *scripted) Fence(context.Context, []string) (changes.Cursor, error) {
	return s.fence, s.fenceErr
}
func (s *scripted) Since(_ context.Context, from, _ changes.Cursor, _ []string) (changes.Delta, error) {
	s.from = &from
	return s.delta, s.sinceErr
}
func (s *scripted) Release(string, changes.Cursor) error { return nil }

func TestMake(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	set := []byte("set")
	if err := db.PutDirStats(ctx, set, []state.DirStatsUpdate{{Path: "/src", Entries: []byte{0}}}); err != nil {
		t.Fatal(err)
	}
	// Hard-link records: inode 42 has names in /src/a and /src/b. The stat
	// cache knows /src/d/x (inode 44, one name when last scanned) and
	// /src/d/y (inode 45, recorded with a name in /src/e too).
	recorded := state.DevIno{Dev: 7, Ino: 42}
	if err := db.PutLinks(ctx, set, true, map[string][]state.DevIno{"/src/a": {recorded}, "/src/b": {recorded}, "/src/e": {{Dev: 7, Ino: 45}}}); err != nil {
		t.Fatal(err)
	}
	rows := scan.EncodeStatRecords([]scan.StatRecord{{Name: "x", Ino: 44, Dev: 7, CTime: 1}, {Name: "y", Ino: 45, Dev: 7, CTime: 1}})
	if err := db.PutDirStats(ctx, set, []state.DirStatsUpdate{{Path: "/src/d", Entries: rows}}); err != nil {
		t.Fatal(err)
	}

	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	fence := changes.Cursor{Kind: changes.KindFanotify, Epoch: "e1", Seq: 10}
	parentCursor, _ := json.Marshal(changes.Cursor{Kind: changes.KindFanotify, Epoch: "e1", Seq: 5})
	parent := &snapshot.Snapshot{ID: blob.ID{1, 2, 3, 4}, Settings: "s", Scan: snapshot.ScanInfo{Cursor: parentCursor, LastFull: now.Add(-time.Hour)}}
	noCursor := &snapshot.Snapshot{ID: parent.ID, Settings: "s"}
	base := func() Request {
		return Request{Roots: []string{"/src"}, Set: set, Settings: "s", Parent: parent, Now: now, Local: db}
	}
	journal := func(delta changes.Delta) *scripted { return &scripted{fence: fence, delta: delta} }
	list := changes.ExternalList("list.txt", []string{"/src/a/file"})

	tests := []struct {
		name   string
		req    func(r *Request)
		mode   string // "" for an error
		reason string // substring of the reason or error
		dirs   []string
		cursor bool // a cursor is recorded
	}{
		{"no parent", func(r *Request) { r.Parent = nil; r.Source = journal(changes.Delta{}) }, snapshot.ModeFull, "no parent snapshot", nil, true},
		{"no source", func(r *Request) {}, snapshot.ModeParentAssisted, "no change journal", nil, false},
		{"journal", func(r *Request) { r.Source = journal(changes.Delta{Dirs: []string{"/src/a"}}) }, snapshot.ModeJournal, "1 directories changed", []string{"/src/a"}, true},
		{"journal, nothing changed", func(r *Request) { r.Source = journal(changes.Delta{}) }, snapshot.ModeJournal, "0 directories changed", []string{}, true},
		{"forced full scan keeps the cursor", func(r *Request) { r.Scan = ScanFull; r.Source = journal(changes.Delta{}) }, snapshot.ModeParentAssisted, "--scan full", nil, true},
		{"parent without cursor", func(r *Request) { r.Parent = noCursor; r.Source = journal(changes.Delta{}) }, snapshot.ModeParentAssisted, "no cursor", nil, true},
		{"settings changed", func(r *Request) { r.Settings = "other"; r.Source = journal(changes.Delta{}) }, snapshot.ModeParentAssisted, "settings changed", nil, true},
		{"read all", func(r *Request) { r.ReadAll = true; r.Source = journal(changes.Delta{}) }, snapshot.ModeFull, "--read-all", nil, true},
		{"no state database", func(r *Request) { r.Local = nil; r.Source = journal(changes.Delta{}) }, snapshot.ModeFull, "no local state database", nil, true},
		{"no stat rows for the set", func(r *Request) { r.Set = []byte("new set"); r.Source = journal(changes.Delta{}) }, snapshot.ModeFull, "no records for these paths", nil, true},
		{"policy", func(r *Request) { r.Policy = Policy{MaxAge: time.Minute}; r.Source = journal(changes.Delta{}) }, snapshot.ModeParentAssisted, "--full-scan-max-age", nil, true},
		{"bad policy", func(r *Request) { r.Policy = Policy{Every: -1} }, "", "--full-scan-every", nil, false},
		{"fence gap", func(r *Request) {
			r.Source = &scripted{fenceErr: &changes.GapError{Reason: "watcher not running"}}
		}, snapshot.ModeParentAssisted, "watcher not running", nil, false},
		{"fence gap, journal demanded", func(r *Request) {
			r.Scan = ScanJournal
			r.Source = &scripted{fenceErr: &changes.GapError{Reason: "watcher not running"}}
		}, "", "--scan journal: cannot use the change journal: no uninterrupted change record: watcher not running", nil, false},
		{"gap since the parent", func(r *Request) {
			r.Source = &scripted{fence: fence, sinceErr: &changes.GapError{Reason: "overflow"}}
		}, snapshot.ModeParentAssisted, "overflow", nil, true},
		{"journal read error", func(r *Request) {
			r.Source = &scripted{fence: fence, sinceErr: errors.New("disk on fire")}
		}, snapshot.ModeParentAssisted, "change journal error: disk on fire", nil, true},
		{"unreadable parent cursor", func(r *Request) {
			r.Parent = &snapshot.Snapshot{ID: parent.ID, Settings: "s", Scan: snapshot.ScanInfo{Cursor: json.RawMessage(`"x"`)}}
			r.Source = journal(changes.Delta{})
		}, snapshot.ModeParentAssisted, "cursor is unreadable", nil, true},
		{"hard-linked file with its path", func(r *Request) {
			r.Source = journal(changes.Delta{Dirs: []string{"/src/a"}, Inodes: []changes.Inode{{Path: "/src/a/f", Dev: 7, Ino: 42}}})
		}, snapshot.ModeJournal, "2 directories changed (1 of them for other names of hard-linked files)", []string{"/src/a", "/src/b"}, true},
		{"hard-linked file known by number", func(r *Request) {
			r.Source = journal(changes.Delta{Inodes: []changes.Inode{{Dev: recorded.Dev, Ino: recorded.Ino}}})
		}, snapshot.ModeJournal, "2 directories changed (2 of them", []string{"/src/a", "/src/b"}, true},
		{"file with one name when last scanned, found in the stat cache", func(r *Request) {
			r.Source = journal(changes.Delta{Dirs: []string{"/src/c"}, Inodes: []changes.Inode{{Path: "/src/c/new-link", Dev: 7, Ino: 44}}})
		}, snapshot.ModeJournal, "2 directories changed (1 of them", []string{"/src/c", "/src/d"}, true},
		{"link added outside to a file with one name", func(r *Request) {
			r.Source = journal(changes.Delta{Inodes: []changes.Inode{{Dev: 7, Ino: 44, LinkAdded: true, Outside: "/elsewhere/link"}}})
		}, snapshot.ModeJournal, "1 directories changed", []string{"/src/d"}, true},
		{"changed by number alone, not hard-linked when last scanned: no search", func(r *Request) {
			r.Source = journal(changes.Delta{Inodes: []changes.Inode{{Dev: 7, Ino: 44}}})
		}, snapshot.ModeJournal, "0 directories changed", []string{}, true},
		{"mapped file known by number alone", func(r *Request) {
			r.Source = journal(changes.Delta{Inodes: []changes.Inode{{Dev: 7, Ino: 44, Mapped: true}}})
		}, snapshot.ModeJournal, "1 directories changed", []string{"/src/d"}, true},
		{"inode the set never met", func(r *Request) {
			r.Source = journal(changes.Delta{Inodes: []changes.Inode{{Dev: recorded.Dev, Ino: 43}}})
		}, snapshot.ModeJournal, "0 directories changed", []string{}, true},
		{"removed name of a hard-linked file", func(r *Request) {
			r.Source = journal(changes.Delta{Dirs: []string{"/src/d"}, Inodes: []changes.Inode{{Path: "/src/d/y"}}})
		}, snapshot.ModeJournal, "2 directories changed", []string{"/src/d", "/src/e"}, true},
		{"removed name of a file with one name", func(r *Request) {
			r.Source = journal(changes.Delta{Dirs: []string{"/src/d"}, Inodes: []changes.Inode{{Path: "/src/d/x"}}})
		}, snapshot.ModeJournal, "1 directories changed", []string{"/src/d"}, true},
		{"neither path nor inode", func(r *Request) {
			r.Source = journal(changes.Delta{Inodes: []changes.Inode{{}}})
		}, snapshot.ModeParentAssisted, "neither its path nor its inode", nil, true},

		// An external list goes through the same rules, but needs no cursor.
		{"list", func(r *Request) { r.Parent = noCursor; r.Source = list }, snapshot.ModeExternal, "changed paths from list.txt (1 entries)", []string{"/src/a", "/src/a/file"}, false},
		{"list, forced full scan", func(r *Request) { r.Scan = ScanFull; r.Source = list }, snapshot.ModeParentAssisted, "--scan full", nil, false},
		{"list, settings changed", func(r *Request) { r.Settings = "new excludes"; r.Source = list }, snapshot.ModeParentAssisted, "settings changed", nil, false},
		{"list, no parent", func(r *Request) { r.Parent = nil; r.Source = list }, snapshot.ModeFull, "no parent snapshot", nil, false},
		{"list, policy", func(r *Request) { r.Policy = Policy{Window: "11:00-13:00"}; r.Source = list }, snapshot.ModeParentAssisted, "full-scan window", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := base()
			tt.req(&req)
			d, err := Make(ctx, req)
			if tt.mode == "" {
				if err == nil || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("got %+v, %v; want an error with %q", d, err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Mode != tt.mode || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("mode %q reason %q, want %q with %q", d.Mode, d.Reason, tt.mode, tt.reason)
			}
			if strings.Join(d.Dirs, ",") != strings.Join(tt.dirs, ",") || (d.Dirs == nil) != (tt.dirs == nil) {
				t.Fatalf("dirs %q, want %q", d.Dirs, tt.dirs)
			}
			if d.Incremental() != (tt.dirs != nil) {
				t.Fatalf("Incremental() = %v for mode %s", d.Incremental(), d.Mode)
			}
			if !d.Cursor.IsZero() != tt.cursor {
				t.Fatalf("cursor %v, want one: %v", d.Cursor, tt.cursor)
			}
			if s, ok := req.Source.(*scripted); ok && s.from != nil && req.Parent == parent && (s.from.Epoch != "e1" || s.from.Seq != 5) {
				t.Fatalf("Since asked from %v, want the parent's cursor", *s.from)
			}
		})
	}
}

// TestLinks: the inodes a journal scan may rebuild, and what CoverLinks
// adds when the scan meets more.
func TestLinks(t *testing.T) {
	ctx := context.Background()
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	set := []byte("set")
	a, b, c := state.DevIno{Dev: 1, Ino: 10}, state.DevIno{Dev: 1, Ino: 11}, state.DevIno{Dev: 1, Ino: 12}
	if err := db.PutLinks(ctx, set, true, map[string][]state.DevIno{"/src/a": {a}, "/src/b": {a, b}}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDirStats(ctx, set, []state.DirStatsUpdate{{Path: "/src", Entries: scan.EncodeStatRecords(nil)}}); err != nil {
		t.Fatal(err)
	}
	cursor, _ := json.Marshal(changes.Cursor{Kind: changes.KindFanotify, Epoch: "e", Seq: 1})
	parent := &snapshot.Snapshot{ID: blob.ID{7}, Settings: "s", Scan: snapshot.ScanInfo{Cursor: cursor}}
	src := &scripted{fence: changes.Cursor{Kind: changes.KindFanotify, Epoch: "e", Seq: 2},
		delta: changes.Delta{Dirs: []string{"/src/x"}, Inodes: []changes.Inode{{Path: "/src/x/n", Dev: 1, Ino: 10}, {Dev: 1, Ino: 12, LinkAdded: true}}}}
	d, err := Make(ctx, Request{Roots: []string{"/src"}, Set: set, Settings: "s", Parent: parent, Local: db, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if d.Mode != snapshot.ModeJournal || strings.Join(d.Dirs, ",") != "/src/a,/src/b,/src/x" || len(d.Links) != 2 || !d.Links[a] || d.Links[c] {
		t.Fatalf("decision %+v", d)
	}
	if _, ok := d.Links[c]; !ok {
		t.Fatalf("inode %v not placed: %+v", c, d.Links)
	}
	d2, err := d.CoverLinks(ctx, []state.DevIno{b})
	if err != nil {
		t.Fatal(err)
	}
	if !d2.Links[b] || len(d.Links) != 2 || strings.Join(d2.Dirs, ",") != "/src/a,/src/b,/src/x" || !strings.Contains(d2.Reason, "3 directories changed (2 of them") {
		t.Fatalf("after CoverLinks %+v (before: %+v)", d2, d)
	}
	// With a stat cache known to describe the parent snapshot whole, a
	// file it lacks was not in the parent: its names are all new.
	if err := db.SetStatsComplete(ctx, set, parent.ID.String()); err != nil {
		t.Fatal(err)
	}
	d3, err := Make(ctx, Request{Roots: []string{"/src"}, Set: set, Settings: "s", Parent: parent, Local: db, Source: src})
	if err != nil || !d3.StatsComplete || !d3.Links[c] {
		t.Fatalf("complete stat cache: %+v %v", d3, err)
	}
	full, err := d.Decline("test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := full.CoverLinks(ctx, []state.DevIno{b}); err == nil || full.Links != nil {
		t.Fatalf("CoverLinks on a full scan: %v, links %v", err, full.Links)
	}
}

// TestDecline: a scan that gives up becomes a full scan with its reason,
// keeping the cursor; with --scan journal it is an error.
func TestDecline(t *testing.T) {
	ctx := context.Background()
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	set := []byte("set")
	if err := db.PutDirStats(ctx, set, []state.DirStatsUpdate{{Path: "/src", Entries: []byte{0}}}); err != nil {
		t.Fatal(err)
	}
	parent := &snapshot.Snapshot{ID: blob.ID{9}, Settings: "s"}
	for _, scan := range []string{ScanAuto, ScanJournal} {
		d, err := Make(ctx, Request{Scan: scan, Roots: []string{"/src"}, Set: set, Settings: "s", Parent: parent, Local: db,
			Source: changes.ExternalList("l", []string{"/src/x"})})
		if err != nil || d.Mode != snapshot.ModeExternal {
			t.Fatalf("--scan %s: %+v %v", scan, d, err)
		}
		d, err = d.Decline("hard-linked file changed: /src/x")
		if scan == ScanJournal {
			if err == nil || !strings.Contains(err.Error(), "hard-linked file changed") {
				t.Fatalf("--scan journal: decline gave %+v, %v", d, err)
			}
			continue
		}
		if err != nil || d.Mode != snapshot.ModeParentAssisted || !strings.HasPrefix(d.Reason, "hard-linked file changed: /src/x; ") || d.Dirs != nil || d.Incremental() {
			t.Fatalf("decline: %+v %v", d, err)
		}
	}
}

// TestCheckStored: files taken from the parent are checked against the
// index exactly when the index may have lost entries the parent uses.
func TestCheckStored(t *testing.T) {
	ctx := context.Background()
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	set := []byte("set")
	if err := db.PutDirStats(ctx, set, []state.DirStatsUpdate{{Path: "/src", Entries: []byte{0}}}); err != nil {
		t.Fatal(err)
	}
	taken := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	parent := &snapshot.Snapshot{ID: blob.ID{5}, Settings: "s", Time: taken}
	for _, tt := range []struct {
		name    string
		shrunk  time.Time
		damaged bool
		want    bool
	}{
		{"index never shrank", time.Time{}, false, false},
		{"shrank before the parent", taken.Add(-time.Hour), false, false},
		{"shrank after the parent", taken.Add(time.Hour), false, true},
		{"damaged index files", time.Time{}, true, true},
	} {
		d, err := Make(ctx, Request{Roots: []string{"/src"}, Set: set, Settings: "s", Parent: parent, Local: db, Now: taken.Add(2 * time.Hour),
			IndexShrunk: tt.shrunk, IndexDamaged: tt.damaged})
		if err != nil {
			t.Fatal(err)
		}
		if d.CheckStored != tt.want || d.Mode != snapshot.ModeParentAssisted {
			t.Errorf("%s: CheckStored %v mode %s, want %v", tt.name, d.CheckStored, d.Mode, tt.want)
		}
	}
}
