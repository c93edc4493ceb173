package changes

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestClassify(t *testing.T) {
	f := newFilter([]string{"/home/me", "/srv/data"}, "/var/lib/tidemark")
	for _, tc := range []struct {
		name      string
		dir, item string
		isDir     bool
		o         op
		want      verdict
	}{
		{"file created", "/home/me/docs", "a.txt", false, opCreate, verdict{dirty: "/home/me/docs", linkCheck: "/home/me/docs/a.txt"}},
		{"file written", "/home/me", "a", false, opContent, verdict{dirty: "/home/me", linkCheck: "/home/me/a"}},
		{"file deleted", "/home/me", "a", false, opRemove, verdict{dirty: "/home/me", inode: "/home/me/a"}},
		{"dir created", "/home/me", "new", true, opCreate, verdict{dirty: "/home/me", tree: "/home/me/new"}},
		{"dir removed", "/home/me", "old", true, opRemove, verdict{dirty: "/home/me"}},
		{"dir chmod", "/home/me", "sub", true, opMeta, verdict{dirty: "/home/me"}},
		{"dir itself", "/home/me/sub", "", true, opMeta, verdict{dirty: "/home/me"}},
		{"outside", "/etc", "passwd", false, opContent, verdict{}},
		{"sibling prefix", "/home/meow", "x", false, opCreate, verdict{}},
		{"fence", "/var/lib/tidemark/fences", "abc123", false, opCreate, verdict{fence: "abc123"}},
		{"fence removed", "/var/lib/tidemark/fences", "abc123", false, opRemove, verdict{}},
		{"bad fence name", "/var/lib/tidemark/fences", "../x", false, opCreate, verdict{}},
		{"journal write", "/var/lib/tidemark/journal/e", "1.seg", false, opContent, verdict{}},
		{"root created", "/srv", "data", true, opCreate, verdict{rootsReplaced: []string{"/srv/data"}}},
		{"ancestor renamed", "/", "home", true, opRemove, verdict{rootsReplaced: []string{"/home/me"}}},
		{"root chmod", "/home", "me", true, opMeta, verdict{dirty: "/home/me"}},
		{"ancestor chmod", "/", "home", true, opMeta, verdict{}},
		{"root dir itself", "/home/me", "", true, opMeta, verdict{dirty: "/home/me"}},
		{"fs root itself", "/", "", true, opMeta, verdict{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := f.classify(tc.dir, tc.item, tc.isDir, tc.o)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// "/" as a root.
	all := newFilter([]string{"/"}, "/var/lib/tidemark")
	if got := all.classify("/", "", true, opMeta); got.dirty != "/" {
		t.Errorf("root / itself: %+v", got)
	}
	if got := all.classify("/var/lib/tidemark/journal", "x", false, opCreate); !reflect.DeepEqual(got, verdict{}) {
		t.Errorf("state dir inside root /: %+v", got)
	}
}

func TestVerdictRecords(t *testing.T) {
	v := verdict{dirty: "/a", tree: "/a/b", inode: "/a/c", rootsReplaced: []string{"/r"}}
	got := v.records()
	want := []Record{{Kind: RecDirty, Path: "/a"}, {Kind: RecTree, Path: "/a/b"}, {Kind: RecInode, Path: "/a/c"},
		{Kind: RecDirty, Path: "/r"}, {Kind: RecTree, Path: "/r"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
}

func TestBatchCoalesces(t *testing.T) {
	var b batch
	b.add(dirty("/a"))
	b.add(dirty("/b"))
	b.add(dirty("/a"))
	b.add(Record{Kind: RecTree, Path: "/a"})
	b.add(Record{Kind: RecFence, Path: "f1"})
	b.add(dirty("/a")) // after the fence: must stay
	b.add(Record{Kind: RecGap, Text: "overflow"})
	b.add(Record{Kind: RecGap, Text: "overflow"})
	var got []string
	for _, r := range b.take() {
		got = append(got, r.Kind.String()+":"+r.Path+r.Text)
	}
	want := []string{"dirty:/a", "dirty:/b", "tree:/a", "fence:f1", "dirty:/a", "gap:overflow"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if b.len() != 0 {
		t.Error("take did not empty the batch")
	}
	b.add(dirty("/a"))
	if b.len() != 1 {
		t.Error("coalescing survived take")
	}
}

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		p, root string
		want    bool
	}{
		{"/a", "/a", true}, {"/a/b", "/a", true}, {"/ab", "/a", false}, {"/", "/a", false},
		{"/a", "/", true}, {"/", "/", true}, {"/a-b/c", "/a", false},
	} {
		if got := within(tc.p, tc.root); got != tc.want {
			t.Errorf("within(%q, %q) = %v", tc.p, tc.root, got)
		}
	}
	got := pruneNested([]string{"/a/c", "/a-b", "/a", "/b", "/a", "/b/x"})
	if want := []string{"/a", "/a-b", "/b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("pruneNested: %v", got)
	}
	if _, err := cleanRoots([]string{"relative"}); err == nil {
		t.Error("relative root accepted")
	}
	if _, err := cleanRoots([]string{"/a/../b"}); err == nil {
		t.Error("unclean root accepted")
	}
	if !overlaps("/a", "/a/b") || !overlaps("/a/b", "/a") || overlaps("/a", "/b") {
		t.Error("overlaps")
	}
}

func TestParseMountinfo(t *testing.T) {
	data := []byte(`22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:27 / /home/me/my\040disk rw - tmpfs tmpfs rw
31 22 0:28 / /home/me/mnt rw master:2 - proc proc rw
32 22 0:29 / /home/me/mnt rw - tmpfs tmpfs rw
33 22 0:30 / /var/lib/tidemark/x rw - tmpfs tmpfs rw
`)
	ms, err := parseMountinfo(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 || ms[1].point != "/home/me/my disk" || ms[0].major != 254 || ms[2].fstype != "proc" {
		t.Fatalf("parsed %+v", ms)
	}
	nested := nestedMounts(ms, []string{"/home/me"}, "/var/lib/tidemark")
	if len(nested) != 2 || nested["/home/me/mnt"].fstype != "tmpfs" {
		t.Errorf("nested: %+v", nested)
	}
	prev := map[string]mountKey{"/home/me/mnt": {31, 0, 28, "proc"}, "/home/me/gone": {40, 0, 40, "tmpfs"}}
	if got, want := diffMounts(prev, nested), []string{"/home/me/gone", "/home/me/mnt", "/home/me/my disk"}; !reflect.DeepEqual(got, want) {
		t.Errorf("diff: %v", got)
	}
	if _, err := parseMountinfo([]byte("garbage line\n")); err == nil {
		t.Error("garbage accepted")
	}
}

// fanEventBytes builds a fanotify event as the kernel lays it out.
func fanEventBytes(mask uint64, infos ...[]byte) []byte {
	var body []byte
	for _, in := range infos {
		body = append(body, in...)
	}
	b := make([]byte, fanMetadataLen, fanMetadataLen+len(body))
	binary.LittleEndian.PutUint32(b[0:], uint32(fanMetadataLen+len(body)))
	b[4] = fanMetadataVersion
	binary.LittleEndian.PutUint16(b[6:], fanMetadataLen)
	binary.LittleEndian.PutUint64(b[8:], mask)
	binary.LittleEndian.PutUint32(b[16:], uint32(0xffffffff)) // FAN_NOFD
	binary.LittleEndian.PutUint32(b[20:], 42)
	return append(b, body...)
}

func fanInfo(typ byte, fsid uint64, handle []byte, name string) []byte {
	body := make([]byte, 16)
	binary.LittleEndian.PutUint32(body[0:], uint32(fsid>>32))
	binary.LittleEndian.PutUint32(body[4:], uint32(fsid))
	binary.LittleEndian.PutUint32(body[8:], uint32(len(handle)))
	binary.LittleEndian.PutUint32(body[12:], 1)
	body = append(body, handle...)
	if name != "" {
		body = append(body, name...)
		body = append(body, 0)
	}
	for (len(body)+4)%4 != 0 {
		body = append(body, 0)
	}
	h := []byte{typ, 0, 0, 0}
	binary.LittleEndian.PutUint16(h[2:], uint16(4+len(body)))
	return append(h, body...)
}

func TestParseFanEvents(t *testing.T) {
	buf := append(fanEventBytes(fanCreate|fanOnDir, fanInfo(fanInfoDFIDName, 7, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "newdir"), fanInfo(fanInfoFID, 7, []byte{9, 9, 9, 9}, "")),
		fanEventBytes(fanQOverflow)...)
	buf = append(buf, fanEventBytes(fanAttrib, fanInfo(fanInfoFID, 7, []byte{5, 5, 5, 5}, ""))...)
	var evs []fanEvent
	if err := parseFanEvents(buf, func(e fanEvent) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d events", len(evs))
	}
	e := evs[0]
	if e.mask != fanCreate|fanOnDir || e.dir == nil || e.dir.fsid != 7 || e.name != "newdir" || e.obj == nil || len(e.dir.handle) != 8 || e.fd != -1 {
		t.Errorf("event 0: %+v", e)
	}
	if fanOps(e.mask) != opCreate {
		t.Errorf("ops %v", fanOps(e.mask))
	}
	if evs[1].mask != fanQOverflow || evs[1].dir != nil {
		t.Errorf("event 1: %+v", evs[1])
	}
	if evs[2].dir != nil || evs[2].obj == nil {
		t.Errorf("event 2: %+v", evs[2])
	}
	if evs[0].dir.key() == evs[0].obj.key() {
		t.Error("keys of different handles collide")
	}
	for _, bad := range [][]byte{
		buf[:10],
		func() []byte { b := append([]byte(nil), buf...); b[4] = 2; return b }(),
		func() []byte { b := append([]byte(nil), buf...); binary.LittleEndian.PutUint32(b, 9999); return b }(),
		func() []byte { b := append([]byte(nil), buf...); b[fanMetadataLen+2] = 200; return b }(),
	} {
		if err := parseFanEvents(bad, func(fanEvent) {}); !errors.Is(err, errFanParse) {
			t.Errorf("malformed input: %v", err)
		}
	}
}

func FuzzParseFanEvents(f *testing.F) {
	f.Add(fanEventBytes(fanCreate, fanInfo(fanInfoDFIDName, 1, []byte{1, 2, 3, 4}, "x")))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseFanEvents(b, func(fanEvent) {})
	})
}

func TestLRU(t *testing.T) {
	c := newLRU(2)
	c.put("a", "1")
	c.put("b", "2")
	c.get("a")
	c.put("c", "3") // evicts b
	if _, ok := c.get("b"); ok {
		t.Error("b not evicted")
	}
	if v, ok := c.get("a"); !ok || v != "1" {
		t.Error("a lost")
	}
	c.clear()
	if c.len() != 0 {
		t.Error("clear")
	}
}
