package state

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
)

// linkStep is one PutLinks call and the inodes the set must (and must
// not) hold afterwards.
type linkStep struct {
	full    bool
	dirs    map[string][]DevIno
	has     []DevIno
	hasNot  []DevIno
	comment string
}

func wantLinks(t *testing.T, db *DB, set []byte, has, hasNot []DevIno) {
	t.Helper()
	for _, want := range []bool{true, false} {
		list := has
		if !want {
			list = hasNot
		}
		for _, in := range list {
			got, err := db.HasLink(context.Background(), set, in)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("HasLink(%x, %+v) = %v, want %v", set, in, got, want)
			}
		}
	}
}

// TestPutLinks: a full update replaces every record of the set; a partial
// one replaces only the records of the directories it lists, by exact
// directory name, an empty list clearing that directory.
func TestPutLinks(t *testing.T) {
	i1, i2, i3, i4 := DevIno{1, 1}, DevIno{1, 2}, DevIno{1, 3}, DevIno{1, 4}
	cases := []struct {
		name  string
		steps []linkStep
	}{
		{"nothing recorded", []linkStep{
			{full: true, hasNot: []DevIno{i1, {0, 0}}},
		}},
		{"full records every listed directory", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1, i2}, "/b": {i3}}, has: []DevIno{i1, i2, i3}, hasNot: []DevIno{i4}},
		}},
		{"full replaces unlisted directories too", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1}, "/b": {i2}}, has: []DevIno{i1, i2}},
			{full: true, dirs: map[string][]DevIno{"/c": {i3}}, has: []DevIno{i3}, hasNot: []DevIno{i1, i2}},
		}},
		{"full with no directories clears the set", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1}}, has: []DevIno{i1}},
			{full: true, hasNot: []DevIno{i1}},
		}},
		{"full with an empty list records nothing for it", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1}}, has: []DevIno{i1}},
			{full: true, dirs: map[string][]DevIno{"/a": {}}, hasNot: []DevIno{i1}},
		}},
		{"partial replaces only the listed directory", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1, i2}, "/b": {i3}}},
			{dirs: map[string][]DevIno{"/a": {i4}}, has: []DevIno{i3, i4}, hasNot: []DevIno{i1, i2}},
		}},
		{"partial keeps an inode of the listed directory it lists again", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1, i2}}},
			{dirs: map[string][]DevIno{"/a": {i2}}, has: []DevIno{i2}, hasNot: []DevIno{i1}},
		}},
		{"partial with an empty list clears the directory", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1}, "/b": {i2}}},
			{dirs: map[string][]DevIno{"/a": {}}, has: []DevIno{i2}, hasNot: []DevIno{i1}},
			{dirs: map[string][]DevIno{"/b": nil}, hasNot: []DevIno{i1, i2}},
		}},
		{"partial with no directories changes nothing", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1}}},
			{dirs: nil, has: []DevIno{i1}},
			{dirs: map[string][]DevIno{}, has: []DevIno{i1}},
		}},
		{"partial matches the directory exactly, not subdirectories or prefixes", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1}, "/a/b": {i2}, "/ab": {i3}, "/a/": {i4}}},
			{dirs: map[string][]DevIno{"/a": {}}, has: []DevIno{i2, i3, i4}, hasNot: []DevIno{i1}},
		}},
		{"an inode in two directories survives losing one", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1}, "/b": {i1}}},
			{dirs: map[string][]DevIno{"/a": {}}, has: []DevIno{i1}},
			{dirs: map[string][]DevIno{"/b": {}}, hasNot: []DevIno{i1}},
		}},
		{"a removed directory's records stay until a full update", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1}, "/gone": {i2}}},
			{dirs: map[string][]DevIno{"/a": {i1}}, has: []DevIno{i1, i2}, comment: "stale records only make journal backups cautious"},
			{full: true, dirs: map[string][]DevIno{"/a": {i1}}, has: []DevIno{i1}, hasNot: []DevIno{i2}},
		}},
		{"partial on a set without records adds", []linkStep{
			{dirs: map[string][]DevIno{"/a": {i1}}, has: []DevIno{i1}, hasNot: []DevIno{i2}},
		}},
		{"the same inode listed twice", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {i1, i1}}, has: []DevIno{i1}},
			{dirs: map[string][]DevIno{"/a": {}}, hasNot: []DevIno{i1}},
		}},
		{"device and inode are both the key", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {{Dev: 7, Ino: 9}}}, has: []DevIno{{7, 9}}, hasNot: []DevIno{{9, 7}, {7, 8}, {8, 9}}},
		}},
		// SQLite stores int64: the whole uint64 range must still be told
		// apart.
		{"numbers past int64", []linkStep{
			{full: true, dirs: map[string][]DevIno{"/a": {{math.MaxUint64, 1 << 63}, {1 << 63, math.MaxUint64}}},
				has:    []DevIno{{math.MaxUint64, 1 << 63}, {1 << 63, math.MaxUint64}},
				hasNot: []DevIno{{math.MaxInt64, 1 << 63}, {math.MaxUint64, math.MaxUint64}, {1 << 63, math.MaxInt64}}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, _ := openTemp(t)
			set := []byte("set")
			for i, s := range c.steps {
				if err := db.PutLinks(context.Background(), set, s.full, s.dirs); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				wantLinks(t, db, set, s.has, s.hasNot)
				if t.Failed() {
					t.Fatalf("after step %d (%s)", i, s.comment)
				}
			}
		})
	}
}

// TestPutLinksSetsIsolated: updates of one set, full or partial, leave the
// records of other sets alone, even for the same directory and inode.
func TestPutLinksSetsIsolated(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	a, b := []byte("set a"), []byte("set b")
	in, onlyB := DevIno{1, 1}, DevIno{1, 2}
	put := func(set []byte, full bool, dirs map[string][]DevIno) {
		t.Helper()
		if err := db.PutLinks(ctx, set, full, dirs); err != nil {
			t.Fatal(err)
		}
	}
	put(a, true, map[string][]DevIno{"/d": {in}})
	wantLinks(t, db, a, []DevIno{in}, nil)
	wantLinks(t, db, b, nil, []DevIno{in})
	put(b, true, map[string][]DevIno{"/d": {in, onlyB}})
	wantLinks(t, db, a, []DevIno{in}, []DevIno{onlyB})
	put(a, false, map[string][]DevIno{"/d": {}})
	wantLinks(t, db, a, nil, []DevIno{in})
	wantLinks(t, db, b, []DevIno{in, onlyB}, nil)
	put(a, true, map[string][]DevIno{"/d": {in}})
	put(b, true, nil)
	wantLinks(t, db, a, []DevIno{in}, nil)
	wantLinks(t, db, b, nil, []DevIno{in, onlyB})
}

// TestPutLinksAtomic: a full update that does not complete keeps the
// previous records (it deletes before inserting, in one transaction).
func TestPutLinksAtomic(t *testing.T) {
	db, _ := openTemp(t)
	set := []byte("set")
	in := DevIno{3, 4}
	if err := db.PutLinks(context.Background(), set, true, map[string][]DevIno{"/a": {in}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.PutLinks(ctx, set, true, map[string][]DevIno{"/b": {{5, 6}}}); err == nil {
		t.Fatal("PutLinks with a cancelled context succeeded")
	}
	if _, err := db.HasLink(ctx, set, in); err == nil {
		t.Fatal("HasLink with a cancelled context succeeded")
	}
	wantLinks(t, db, set, []DevIno{in}, []DevIno{{5, 6}})
}

// TestLinksConcurrent: journal backups check HasLink while another set's
// backup writes its records.
func TestLinksConcurrent(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	reader, writer := []byte("reader"), []byte("writer")
	in := DevIno{1, 1}
	if err := db.PutLinks(ctx, reader, true, map[string][]DevIno{"/r": {in}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 20 {
				dirs := map[string][]DevIno{"/w": {{uint64(w), uint64(i)}}}
				if err := db.PutLinks(ctx, writer, i%2 == 0, dirs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 3 {
		wg.Go(func() {
			for range 50 {
				if has, err := db.HasLink(ctx, reader, in); err != nil || !has {
					t.Errorf("HasLink of an untouched set = %v, %v", has, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Every writer's last update was partial and replaced /w with its own
	// inode; whichever came last holds /w now, alone.
	held := 0
	for w := range 3 {
		has, err := db.HasLink(ctx, writer, DevIno{uint64(w), 19})
		if err != nil {
			t.Fatal(err)
		}
		if has {
			held++
		}
	}
	if held != 1 {
		t.Fatalf("%d writers' last records held, want exactly 1", held)
	}
}

// TestLinkDirs: the directories recorded for each inode, after full and
// partial updates, per set; inodes without records are absent.
func TestLinkDirs(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	set, other := []byte("set"), []byte("other")
	i1, i2, i3 := DevIno{1, 1}, DevIno{1, 2}, DevIno{2, 1}
	if err := db.PutLinks(ctx, set, true, map[string][]DevIno{"/a": {i1, i2}, "/b": {i1}, "/c": {}}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutLinks(ctx, other, true, map[string][]DevIno{"/z": {i3}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.LinkDirs(ctx, set, []DevIno{i1, i2, i3})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[i1]) != 2 || got[i1][0] != "/a" || got[i1][1] != "/b" || len(got[i2]) != 1 || got[i2][0] != "/a" {
		t.Fatalf("LinkDirs: %v", got)
	}
	// A journal scan lists /b again without the inode: its record goes.
	if err := db.PutLinks(ctx, set, false, map[string][]DevIno{"/b": nil}); err != nil {
		t.Fatal(err)
	}
	if got, err = db.LinkDirs(ctx, set, []DevIno{i1}); err != nil || len(got[i1]) != 1 || got[i1][0] != "/a" {
		t.Fatalf("after a partial update: %v %v", got, err)
	}
	if got, err = db.LinkDirs(ctx, set, nil); err != nil || len(got) != 0 {
		t.Fatalf("no inodes: %v %v", got, err)
	}
}

// TestStatRows: every row of the set, none of another set; an error from
// the callback ends the iteration and is returned.
func TestStatRows(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	set, other := []byte("set"), []byte("other")
	if err := db.PutDirStats(ctx, set, []DirStatsUpdate{{Path: "/a", Entries: []byte{1}}, {Path: "/a/b", Entries: []byte{2}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDirStats(ctx, other, []DirStatsUpdate{{Path: "/x", Entries: []byte{3}}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]byte{}
	if err := db.StatRows(ctx, set, func(dir string, entries []byte) error {
		got[dir] = entries[0]
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["/a"] != 1 || got["/a/b"] != 2 {
		t.Fatalf("rows: %v", got)
	}
	stop := errors.New("stop")
	n := 0
	if err := db.StatRows(ctx, set, func(string, []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("stopping: %v after %d rows", err, n)
	}
}

// TestStatsComplete: per set, the snapshot last recorded, "" for none.
func TestStatsComplete(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	if got, err := db.StatsComplete(ctx, []byte("a")); err != nil || got != "" {
		t.Fatalf("nothing recorded: %q %v", got, err)
	}
	if err := db.SetStatsComplete(ctx, []byte("a"), "snap1"); err != nil {
		t.Fatal(err)
	}
	if got, err := db.StatsComplete(ctx, []byte("a")); err != nil || got != "snap1" {
		t.Fatalf("recorded: %q %v", got, err)
	}
	if got, _ := db.StatsComplete(ctx, []byte("b")); got != "" {
		t.Fatalf("another set: %q", got)
	}
	if err := db.SetStatsComplete(ctx, []byte("a"), ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.StatsComplete(ctx, []byte("a")); got != "" {
		t.Fatalf("cleared: %q", got)
	}
}
