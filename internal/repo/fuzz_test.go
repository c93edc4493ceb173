package repo

import (
	"bytes"
	"errors"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		packs, err := DecodeIndex(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// Varints may be encoded in more bytes than needed, so compare
		// decoded values, not bytes.
		again, err := DecodeIndex(EncodeIndex(packs))
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
