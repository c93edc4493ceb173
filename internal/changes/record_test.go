package changes

import (
	"errors"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	tm := time.Unix(1700000000, 123456789)
	recs := []Record{
		{Seq: 1, Kind: RecStart, Time: tm, Text: "tidemark watcher pid 1"},
		{Seq: 2, Kind: RecDirty, Time: tm, Path: "/home/me/a b"},
		{Seq: 3, Kind: RecTree, Time: tm, Path: "/"},
		{Seq: 4, Kind: RecInode, Time: tm, Path: "/x/y", Text: "65024:12"},
		{Seq: 5, Kind: RecInode, Time: tm, Text: "1:2"},
		{Seq: 6, Kind: RecFence, Time: tm, Path: "0123abcd"},
		{Seq: 6, Kind: RecLinkAdded, Time: tm, Path: "/out/link", Text: "65024:13"},
		{Seq: 6, Kind: RecLinkAdded, Time: tm, Text: "65024:14"},
		{Seq: 7, Kind: RecGap, Time: tm, Text: "overflow"},
		{Seq: 1 << 60, Kind: RecGap, Time: tm, Path: "/mnt", Text: "filesystem unmounted: /mnt"},
	}
	var buf []byte
	for _, r := range recs {
		buf = appendRecord(buf, r)
	}
	for i, want := range recs {
		got, n, err := decodeRecord(buf)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !got.Time.Equal(want.Time) || got.Seq != want.Seq || got.Kind != want.Kind || got.Path != want.Path || got.Text != want.Text {
			t.Fatalf("record %d: got %+v, want %+v", i, got, want)
		}
		buf = buf[n:]
	}
	if len(buf) != 0 {
		t.Fatalf("%d bytes left", len(buf))
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	good := appendRecord(nil, Record{Seq: 9, Kind: RecDirty, Time: time.Unix(1, 0), Path: "/a"})
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0x40
		return b
	}
	bad := func(r Record) []byte { // valid frame, invalid content
		return appendRecord(nil, r)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, errShortRecord},
		{"header only", good[:frameHeader], errShortRecord},
		{"cut", good[:len(good)-1], errShortRecord},
		{"zero length", make([]byte, 16), errCorruptRecord},
		{"huge length", []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, errCorruptRecord},
		{"checksum", flip(len(good) - 1), errCorruptRecord},
		{"length", flip(0), errShortRecord},
		{"relative path", bad(Record{Seq: 1, Kind: RecDirty, Path: "a/b"}), errCorruptRecord},
		{"unclean path", bad(Record{Seq: 1, Kind: RecDirty, Path: "/a/../b"}), errCorruptRecord},
		{"seq 0", bad(Record{Seq: 0, Kind: RecDirty, Path: "/a"}), errCorruptRecord},
		{"unknown kind", bad(Record{Seq: 1, Kind: 99, Path: "/a"}), errCorruptRecord},
		{"bad fence", bad(Record{Seq: 1, Kind: RecFence, Path: "../x"}), errCorruptRecord},
		{"gap without reason", bad(Record{Seq: 1, Kind: RecGap}), errCorruptRecord},
		{"empty inode", bad(Record{Seq: 1, Kind: RecInode}), errCorruptRecord},
		{"bad inode number", bad(Record{Seq: 1, Kind: RecInode, Text: "12"}), errCorruptRecord},
		{"link added without number", bad(Record{Seq: 1, Kind: RecLinkAdded, Path: "/a"}), errCorruptRecord},
		{"link added, relative path", bad(Record{Seq: 1, Kind: RecLinkAdded, Path: "a", Text: "1:2"}), errCorruptRecord},
		{"NUL in path", bad(Record{Seq: 1, Kind: RecDirty, Path: "/a\x00b"}), errCorruptRecord},
		{"start with path", bad(Record{Seq: 1, Kind: RecStart, Path: "/a"}), errCorruptRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeRecord(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzDecodeRecord: the decoder never panics, only reports the two error
// kinds, and whatever it accepts is valid and survives re-encoding.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, Record{Seq: 1, Kind: RecStart, Text: "x"}))
	f.Add(appendRecord(nil, Record{Seq: 2, Kind: RecDirty, Path: "/a/b"}))
	f.Add(appendRecord(nil, Record{Seq: 3, Kind: RecInode, Path: "/a", Text: "1:2"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, errShortRecord) && !errors.Is(err, errCorruptRecord) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		if err := r.validate(); err != nil {
			t.Fatalf("accepted an invalid record: %v", err)
		}
		again, _, err := decodeRecord(appendRecord(nil, r))
		if err != nil || again.Seq != r.Seq || again.Kind != r.Kind || again.Path != r.Path || again.Text != r.Text || !again.Time.Equal(r.Time) {
			t.Fatalf("re-encoding changed %+v to %+v (%v)", r, again, err)
		}
	})
}
