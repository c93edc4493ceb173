package changes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeJournal writes an epoch's journal the way the watcher does, without
// a watcher.
type fakeJournal struct {
	t     *testing.T
	j     *Journal
	epoch string
	w     *journalWriter
}

func newFakeJournal(t *testing.T, roots []string, segBytes int64) *fakeJournal {
	t.Helper()
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeJournal{t: t, j: j}
	f.newEpoch("e1", roots, segBytes)
	return f
}

func (f *fakeJournal) newEpoch(epoch string, roots []string, segBytes int64) {
	f.t.Helper()
	if f.w != nil {
		f.w.close()
	}
	f.epoch = epoch
	w, err := newJournalWriter(f.j.l.epoch(epoch), segBytes)
	if err != nil {
		f.t.Fatal(err)
	}
	f.w = w
	if err := writeJSONAtomic(f.j.l.epochMeta(epoch), epochMeta{Epoch: epoch, Kind: KindFanotify, Roots: roots}, false); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { w.close() })
	f.write(Record{Kind: RecStart, Text: "test"})
}

// write appends records and returns the cursor of the last one.
func (f *fakeJournal) write(recs ...Record) Cursor {
	f.t.Helper()
	for i := range recs {
		recs[i].Time = time.Unix(1, 0)
	}
	if err := f.w.write(recs); err != nil {
		f.t.Fatal(err)
	}
	return Cursor{Kind: KindFanotify, Epoch: f.epoch, Seq: f.w.lastSeq()}
}

func (f *fakeJournal) fence() Cursor { return f.write(Record{Kind: RecFence, Path: "f"}) }

func dirty(p string) Record { return Record{Kind: RecDirty, Path: p} }

func TestSince(t *testing.T) {
	roots := []string{"/data", "/home/me"}
	f := newFakeJournal(t, roots, 0)
	c1 := f.fence()
	f.write(dirty("/data/a"), dirty("/data/a"), dirty("/etc"), dirty("/home/me/x"), dirty("/home/meow"),
		Record{Kind: RecTree, Path: "/data/new"}, Record{Kind: RecTree, Path: "/elsewhere"},
		Record{Kind: RecInode, Path: "/data/a/f", Text: "1:2"}, Record{Kind: RecInode, Path: "/etc/passwd"},
		Record{Kind: RecInode, Text: "3:4"}, Record{Kind: RecGap, Path: "/mnt/usb", Text: "filesystem unmounted: /mnt/usb"})
	c2 := f.fence()
	f.write(dirty("/data/later"))
	c3 := f.fence()

	d, err := f.j.Since(c1, c2, roots)
	if err != nil {
		t.Fatal(err)
	}
	want := Delta{
		Dirs:   []string{"/data/a", "/home/me/x"},
		Trees:  []string{"/data/new"},
		Inodes: []Inode{{Dev: 3, Ino: 4}, {Path: "/data/a/f", Dev: 1, Ino: 2}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got %+v\nwant %+v", d, want)
	}
	// Restricted to one root below a watched root.
	d, err = f.j.Since(c1, c3, []string{"/data/a"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Dirs, []string{"/data/a"}) {
		t.Errorf("restricted: %+v", d)
	}
	// Empty interval.
	if d, err := f.j.Since(c2, c2, roots); err != nil || len(d.Dirs) != 0 {
		t.Errorf("empty interval: %+v %v", d, err)
	}
	// The gap is outside these roots, but inside /mnt.
	if _, err := f.j.Since(c1, c2, []string{"/"}); !errors.Is(err, ErrGap) {
		t.Errorf("gap not reported for an overlapping root: %v", err)
	}
}

// Inode records outside the requested roots: a link elsewhere (another
// backup set's roots, or outside every root) of a file that may also be
// inside is kept by number, and a link added there says so.
func TestSinceInodesOutsideRoots(t *testing.T) {
	roots := []string{"/w"}
	f := newFakeJournal(t, roots, 0)
	c1 := f.fence()
	f.write(
		Record{Kind: RecInode, Path: "/w/b/y", Text: "1:10"},         // content, through another set's link
		Record{Kind: RecLinkAdded, Path: "/w/b/z", Text: "1:11"},     // a link made in another set
		Record{Kind: RecLinkAdded, Path: "/out/xlink", Text: "1:12"}, // a link made outside every root
		Record{Kind: RecLinkAdded, Text: "1:13"},                     // path not verified
		Record{Kind: RecLinkAdded, Path: "/w/a/x", Text: "1:14"},     // inside: listed by path
		Record{Kind: RecInode, Path: "/w/b/gone"},                    // removed elsewhere, no number
	)
	c2 := f.fence()
	d, err := f.j.Since(c1, c2, []string{"/w/a"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Inode{
		{Dev: 1, Ino: 10},
		{Dev: 1, Ino: 11, LinkAdded: true, Outside: "/w/b/z"},
		{Dev: 1, Ino: 12, LinkAdded: true, Outside: "/out/xlink"},
		{Dev: 1, Ino: 13, LinkAdded: true},
		{Path: "/w/a/x", Dev: 1, Ino: 14},
	}
	if !reflect.DeepEqual(d.Inodes, want) {
		t.Errorf("got %+v\nwant %+v", d.Inodes, want)
	}
}

func TestSinceGapRules(t *testing.T) {
	roots := []string{"/r"}
	gapErr := func(reason string) func(*testing.T, error) {
		return func(t *testing.T, err error) {
			t.Helper()
			var g *GapError
			if !errors.As(err, &g) || !errors.Is(err, ErrGap) || !strings.Contains(g.Reason, reason) {
				t.Fatalf("got %v, want gap %q", err, reason)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(f *fakeJournal) (from, to Cursor)
		check func(*testing.T, error)
	}{
		{"overflow between", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			f.write(dirty("/r/a"), Record{Kind: RecGap, Text: "overflow"}, dirty("/r/b"))
			return c, f.fence()
		}, gapErr("overflow")},
		{"scoped gap on a root", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			f.write(Record{Kind: RecGap, Path: "/r/mnt", Text: "watch limit"})
			return c, f.fence()
		}, gapErr("watch limit")},
		{"scoped gap above a root", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			f.write(Record{Kind: RecGap, Path: "/", Text: "filesystem changed at /"})
			return c, f.fence()
		}, gapErr("filesystem changed")},
		{"gap before the interval", func(f *fakeJournal) (Cursor, Cursor) {
			f.write(Record{Kind: RecGap, Text: "overflow"})
			c := f.fence()
			f.write(dirty("/r/a"))
			return c, f.fence()
		}, func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"gap after the interval", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			to := f.fence()
			f.write(Record{Kind: RecGap, Text: "overflow"})
			return c, to
		}, func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"epoch changed", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			f.newEpoch("e2", roots, 0)
			return c, f.fence()
		}, gapErr("epoch changed")},
		{"no cursor", func(f *fakeJournal) (Cursor, Cursor) { return Cursor{}, f.fence() }, gapErr("no cursor")},
		{"source changed", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			c.Kind = KindInotify
			return c, f.fence()
		}, gapErr("source changed")},
		{"cursor after fence", func(f *fakeJournal) (Cursor, Cursor) {
			to := f.fence()
			return f.fence(), to
		}, gapErr("after the fence")},
		{"path not watched", func(f *fakeJournal) (Cursor, Cursor) {
			return f.fence(), f.fence() // checked with a root the epoch does not watch
		}, nil},
		{"truncated", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			for i := 0; i < 50; i++ {
				f.write(dirty("/r/a"))
			}
			to := f.fence()
			segs, _ := listSegments(f.j.l.epoch(f.epoch))
			os.Remove(segs[0].path)
			return c, to
		}, gapErr("records already truncated")},
		{"missing journal", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			to := f.fence()
			segs, _ := listSegments(f.j.l.epoch(f.epoch))
			for _, s := range segs {
				os.Remove(s.path)
			}
			return c, to
		}, gapErr("journal error")},
		{"missing epoch", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			to := f.fence()
			os.RemoveAll(f.j.l.epoch(f.epoch))
			return c, to
		}, gapErr("journal error: epoch e1 not found")},
		{"corrupt record", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			f.write(dirty("/r/aaaaaaaa"))
			to := f.fence()
			segs, _ := listSegments(f.j.l.epoch(f.epoch))
			for _, s := range segs {
				data, _ := os.ReadFile(s.path)
				if i := strings.Index(string(data), "aaaaaaaa"); i >= 0 {
					data[i] = 'b'
					os.WriteFile(s.path, data, 0o600)
				}
			}
			return c, to
		}, gapErr("journal error")},
		{"fence not written", func(f *fakeJournal) (Cursor, Cursor) {
			c := f.fence()
			to := c
			to.Seq += 10
			return c, to
		}, gapErr("journal error")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeJournal(t, roots, 64) // tiny segments
			from, to := tc.setup(f)
			if tc.check == nil {
				_, err := f.j.Since(from, to, []string{"/other"})
				gapErr("path not watched")(t, err)
				return
			}
			_, err := f.j.Since(from, to, roots)
			tc.check(t, err)
		})
	}
}

func TestSinceAcrossSegments(t *testing.T) {
	f := newFakeJournal(t, []string{"/r"}, 100)
	c1 := f.fence()
	var want []string
	for i := 0; i < 40; i++ {
		p := filepath.Join("/r", strings.Repeat("x", i+1))
		want = append(want, p)
		f.write(dirty(p))
	}
	c2 := f.fence()
	segs, err := listSegments(f.j.l.epoch(f.epoch))
	if err != nil || len(segs) < 10 {
		t.Fatalf("segments: %d %v", len(segs), err)
	}
	d, err := f.j.Since(c1, c2, []string{"/r"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Dirs, want) {
		t.Errorf("got %v", d.Dirs)
	}
}

func TestCompactFollowsReleases(t *testing.T) {
	f := newFakeJournal(t, []string{"/r"}, 100)
	cursors := []Cursor{f.fence()}
	for i := 0; i < 30; i++ {
		f.write(dirty("/r/" + strings.Repeat("y", 20)))
		cursors = append(cursors, f.fence())
	}
	count := func() int {
		segs, err := listSegments(f.j.l.epoch(f.epoch))
		if err != nil {
			t.Fatal(err)
		}
		return len(segs)
	}
	// The watcher compacts when it starts a segment; here the test does.
	compactNow := func() {
		t.Helper()
		if _, err := compact(f.j.l, f.epoch, f.j.now()); err != nil {
			t.Fatal(err)
		}
	}
	before := count()
	// Two sets: compaction follows the slower one.
	if err := f.j.Release("set-b", cursors[5]); err != nil {
		t.Fatal(err)
	}
	if err := f.j.Release("set-a", cursors[25]); err != nil {
		t.Fatal(err)
	}
	if count() != before {
		t.Fatal("Release deleted segments itself")
	}
	compactNow()
	mid := count()
	if mid >= before {
		t.Fatalf("no compaction: %d segments before, %d after", before, mid)
	}
	if _, err := f.j.Since(cursors[5], cursors[30], []string{"/r"}); err != nil {
		t.Fatalf("set-b's records were deleted: %v", err)
	}
	if err := f.j.Release("set-b", cursors[28]); err != nil {
		t.Fatal(err)
	}
	compactNow()
	if n := count(); n >= mid {
		t.Fatalf("no compaction after set-b moved: %d -> %d", mid, n)
	}
	if _, err := f.j.Since(cursors[25], cursors[30], []string{"/r"}); err != nil {
		t.Fatalf("set-a's records were deleted: %v", err)
	}
	_, err := f.j.Since(cursors[1], cursors[30], []string{"/r"})
	var g *GapError
	if !errors.As(err, &g) || g.Reason != "records already truncated" {
		t.Fatalf("old cursor: %v", err)
	}
	// A set of another epoch holds nothing back.
	if err := f.j.Release("set-old", Cursor{Kind: KindFanotify, Epoch: "old", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	sets, err := readSets(f.j.l)
	if err != nil || len(sets) != 3 {
		t.Fatalf("sets: %+v %v", sets, err)
	}
	// A set with no backup for longer than abandonedSet holds nothing
	// back: set-b's older cursor no longer stops compaction up to set-a's.
	if err := f.j.Release("set-a", cursors[29]); err != nil {
		t.Fatal(err)
	}
	now := f.j.now
	f.j.now = func() time.Time { return now().Add(-abandonedSet - time.Hour) }
	if err := f.j.Release("set-b", cursors[26]); err != nil {
		t.Fatal(err)
	}
	f.j.now = now
	beforeAbandoned := count()
	compactNow()
	if n := count(); n >= beforeAbandoned {
		t.Fatalf("an abandoned set held back compaction: %d -> %d segments", beforeAbandoned, n)
	}
	if _, err := f.j.Since(cursors[29], cursors[30], []string{"/r"}); err != nil {
		t.Fatalf("set-a's records were deleted: %v", err)
	}
	if err := f.j.Release("", cursors[1]); err == nil {
		t.Error("empty set name accepted")
	}
	if err := f.j.Release("x", Cursor{Kind: KindFanotify, Epoch: "../x", Seq: 1}); err == nil {
		t.Error("bad epoch accepted")
	}
}

func TestStatusWithoutWatcher(t *testing.T) {
	f := newFakeJournal(t, []string{"/r"}, 0)
	st, err := f.j.Status()
	if err != nil || st.Watcher != nil || st.Alive {
		t.Fatalf("status without watcher.json: %+v %v", st, err)
	}
	c1 := f.fence()
	f.write(dirty("/r/a"), dirty("/r/b"), Record{Kind: RecGap, Text: "overflow"})
	ws := WatcherState{Epoch: f.epoch, Kind: KindFanotify, Roots: []string{"/r"},
		Filesystems: []FilesystemInfo{{Dev: 1, Mount: "/r", Source: KindFanotify, Roots: []string{"/r"}}}}
	if err := writeJSONAtomic(f.j.l.watcher(), ws, false); err != nil {
		t.Fatal(err)
	}
	if err := f.j.Release("s", c1); err != nil {
		t.Fatal(err)
	}
	st, err = f.j.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Alive || st.LastSeq != c1.Seq+3 || len(st.Gaps) != 1 || len(st.Filesystems) != 1 || st.Filesystems[0].PendingDirs != 2 || len(st.Sets) != 1 {
		t.Errorf("status: %+v", st)
	}
	_, err = f.j.Fence(context.Background(), []string{"/r"}, time.Second)
	var g *GapError
	if !errors.As(err, &g) || g.Reason != "watcher not running" {
		t.Errorf("fence: %v", err)
	}
}

func TestCheckCoverage(t *testing.T) {
	ws := &WatcherState{Roots: []string{"/home", "/srv"}, Uncovered: []Uncovered{{Path: "/srv/proc", Reason: "unsupported filesystem: proc"}}}
	for _, tc := range []struct {
		roots []string
		want  string
	}{
		{[]string{"/home"}, ""},
		{[]string{"/home/me", "/srv/www"}, ""},
		{[]string{"/srv"}, "unsupported filesystem: proc"},
		{[]string{"/srv/proc/1"}, "unsupported filesystem: proc"},
		{[]string{"/etc"}, "path not watched: /etc"},
		{[]string{"/"}, "path not watched: /"},
	} {
		err := checkCoverage(ws, tc.roots)
		got := ""
		if err != nil {
			got = err.(*GapError).Reason
		}
		if got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.roots, got, tc.want)
		}
	}
}
