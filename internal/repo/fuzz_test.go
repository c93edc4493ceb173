package repo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tidemark/tidemark/internal/blob"
)

func testID(b byte) blob.ID {
	var id blob.ID
	for i := range id {
		id[i] = b + byte(i)
	}
	return id
}

// seedPackBlobs are the contents of a few plausible packs.
var seedPackBlobs = [][]PackedBlob{
	nil,
	{{Type: blob.Tree, ID: testID(1), Length: 300, RawLen: 512}},
	{
		{Type: blob.Data, ID: testID(2), Length: 1<<20 + 41, RawLen: 1 << 20},
		{Type: blob.Data, ID: testID(3), Offset: 1<<20 + 41, Length: 41, RawLen: 0},
		{Type: blob.Data, ID: testID(4), Offset: 1<<20 + 82, Length: 600 << 10, RawLen: 2 << 20},
	},
}

func packDataLen(bs []PackedBlob) int64 {
	var n int64
	for _, b := range bs {
		n += int64(b.Length)
	}
	return n
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(EncodeIndex(nil))
	var packs []IndexPack
	for i, bs := range seedPackBlobs {
		packs = append(packs, IndexPack{ID: testID(byte(100 + i)), Blobs: bs})
		f.Add(EncodeIndex(packs))
	}
	f.Add(EncodeDoomedIndex(packs))
	f.Fuzz(func(t *testing.T, data []byte) {
		packs, err := DecodeIndex(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		encode := EncodeIndex
		for _, p := range packs {
			if p.Doomed != packs[0].Doomed {
				t.Fatal("one index file gave doomed and live packs")
			}
			if p.Doomed {
				encode = EncodeDoomedIndex
			}
		}
		// Varints may be encoded in more bytes than needed, so compare
		// decoded values, not bytes.
		again, err := DecodeIndex(encode(packs))
		if err != nil {
			t.Fatalf("re-encoded index does not decode: %v", err)
		}
		if !reflect.DeepEqual(packs, again) {
			t.Fatalf("round trip changed the index:\n%+v\n%+v", packs, again)
		}
	})
}

func FuzzDecodePackHeader(f *testing.F) {
	for _, bs := range seedPackBlobs {
		f.Add(encodePackHeader(bs), packDataLen(bs))
	}
	f.Add([]byte{packVersion}, int64(-1))
	f.Fuzz(func(t *testing.T, hdr []byte, dataLen int64) {
		blobs, err := decodePackHeader(hdr, dataLen)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		var off int64
		for _, b := range blobs {
			if int64(b.Offset) != off {
				t.Fatalf("blob %s at offset %d, want %d", b.ID.Short(), b.Offset, off)
			}
			off += int64(b.Length)
		}
		if off != dataLen {
			t.Fatalf("blobs cover %d bytes, want %d", off, dataLen)
		}
		// The header has fixed-size fields: it re-encodes to the same bytes.
		enc := encodePackHeader(blobs)
		if !bytes.Equal(enc, hdr) {
			t.Fatalf("re-encoded header differs:\n%x\n%x", hdr, enc)
		}
		again, err := decodePackHeader(enc, dataLen)
		if err != nil || !reflect.DeepEqual(blobs, again) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, blobs, again)
		}
	})
}

// FuzzParseTable feeds arbitrary bytes to the index table parser: it must
// reject them with ErrCorrupt or yield a table whose every entry can be
// decoded and searched without reading out of bounds.
func FuzzParseTable(f *testing.F) {
	dir := f.TempDir()
	for i, n := range []int{0, 1, 3} {
		var es []tableEntry
		for j := range n {
			es = append(es, tableEntry{id: testID(byte(10 * j)), l: Location{Pack: testID(byte(j % 2)), Type: blob.Data, Offset: uint32(j)}})
		}
		path := filepath.Join(dir, fmt.Sprint(i))
		if err := writeTable(path, nil, es, []string{fmt.Sprintf("%064x", i)}); err != nil {
			f.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := parseTable(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		tb.nameSet()
		for i := 0; i < tb.n; i++ {
			// Unsorted entries (a damaged table) may hide blobs; the
			// search must still stay inside the table.
			id, _, _ := tb.location(i)
			tb.find(id)
		}
		var prev blob.ID
		_ = tb.each(func(id blob.ID, _ Location) { prev = id })
		_ = prev
	})
}
