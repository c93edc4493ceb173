package changes

import (
	"errors"
	"testing"
)

func TestParseMaps(t *testing.T) {
	data := "" +
		"55d0c1a00000-55d0c1a02000 r--p 00000000 fe:00 1311                       /usr/bin/cat\n" +
		"7f95c861a000-7f95c861e000 rw-s 00000000 fe:00 464                        /root/.config/go/telemetry/a.count\n" +
		"7f95c861e000-7f95c8620000 r--s 00000000 fe:00 465                        /srv/ro.db\n" +
		"7f95c8620000-7f95c8621000 rw-s 00000000 00:01 0                          \n" +
		"7f95c8621000-7f95c8622000 -w-s 00001000 103:0a 99                        /srv/with space/x (deleted)\n" +
		"7f95c8622000-7f95c8623000 rw-s 00000000 08:01 7                          /srv/new\\012line\n" +
		"7ffd5d5e9000-7ffd5d60a000 rw-p 00000000 00:00 0                          [stack]\n" +
		"7f95c8623000-7f95c8624000 rw-s 00000000 08:01 8\n"
	var got []sharedMapping
	if err := parseMaps([]byte(data), func(m sharedMapping) { got = append(got, m) }); err != nil {
		t.Fatal(err)
	}
	want := []sharedMapping{
		{start: 0x7f95c861a000, end: 0x7f95c861e000, major: 0xfe, minor: 0, ino: 464, path: "/root/.config/go/telemetry/a.count"},
		{start: 0x7f95c8621000, end: 0x7f95c8622000, major: 0x103, minor: 0x0a, ino: 99, path: "/srv/with space/x", deleted: true},
		{start: 0x7f95c8622000, end: 0x7f95c8623000, major: 8, minor: 1, ino: 7, path: "/srv/new\nline"},
		{start: 0x7f95c8623000, end: 0x7f95c8624000, major: 8, minor: 1, ino: 8},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{
		"7f95c861a000-7f95c861e000 rw-s 00000000 fe00 464 /x\n",
		"7f95c861a000-7f95c861e000 rw-s 00000000 fe:zz 464 /x\n",
		"7f95c861a000-7f95c861e000 rw-s 00000000 fe:00 -4 /x\n",
		"7f95c861a000-7f95c861e000 rw-sp 00000000 fe:00 4 /x\n",
		"7f95c861a000-7f95c861e000 rw-s\n",
		"7f95c861a000 rw-s 00000000 fe:00 4 /x\n",
		"7f95c861a000-zz rw-s 00000000 fe:00 4 /x\n",
	} {
		if err := parseMaps([]byte(bad), func(sharedMapping) {}); !errors.Is(err, errMapsParse) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add([]byte("7f95c861a000-7f95c861e000 rw-s 00000000 fe:00 464    /root/a.count\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseMaps(b, func(m sharedMapping) {
			if m.ino == 0 {
				t.Fatalf("mapping without inode: %+v", m)
			}
		})
	})
}
