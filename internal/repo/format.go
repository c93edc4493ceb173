package repo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/crypto"
)

// Plaintext of every encrypted object starts with a flag byte saying how the
// payload is stored.
const (
	flagRaw  = 0
	flagZstd = 1
)

// ErrCorrupt marks data that is present but damaged.
var ErrCorrupt = errors.New("repository data is corrupt")

// codec compresses and decompresses payloads; encoders are pooled because
// they are costly to create.
type codec struct {
	level zstd.EncoderLevel
	encs  sync.Pool
	dec   *zstd.Decoder
}

func newCodec(level zstd.EncoderLevel) *codec {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		panic(err) // only fails for invalid options
	}
	c := &codec{level: level, dec: dec}
	c.encs.New = func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(err)
		}
		return e
	}
	return c
}

// pack prepends the flag and compresses when it pays (at least 1/32 saved).
func (c *codec) pack(dst, plaintext []byte, compress bool) []byte {
	if compress && len(plaintext) > 64 {
		enc := c.encs.Get().(*zstd.Encoder)
		start := len(dst)
		dst = append(dst, flagZstd)
		dst = enc.EncodeAll(plaintext, dst)
		c.encs.Put(enc)
		if len(dst)-start-1 < len(plaintext)-len(plaintext)/32 {
			return dst
		}
		dst = dst[:start]
	}
	dst = append(dst, flagRaw)
	return append(dst, plaintext...)
}

// unpack undoes pack; rawLen bounds the output (0 for unknown).
func (c *codec) unpack(dst, data []byte, rawLen int) ([]byte, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("empty payload: %w", ErrCorrupt)
	}
	switch data[0] {
	case flagRaw:
		return append(dst, data[1:]...), nil
	case flagZstd:
		if rawLen > 0 && cap(dst)-len(dst) < rawLen {
			dst = append(make([]byte, 0, len(dst)+rawLen), dst...)
		}
		out, err := c.dec.DecodeAll(data[1:], dst)
		if err != nil {
			return nil, fmt.Errorf("decompress: %v: %w", err, ErrCorrupt)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown payload flag %d: %w", data[0], ErrCorrupt)
}

// Pack file layout: blob ciphertexts back to back, then the encrypted
// header, then the header's length as a little-endian uint32.
//
// Header plaintext: version byte, then per blob: type (1), ciphertext
// length (4), raw length (4), ID (32).
const (
	packVersion     = 1
	headerEntrySize = 1 + 4 + 4 + blob.IDSize
	// maxHeaderSize bounds what a damaged trailer can make us allocate.
	maxHeaderSize = 16 << 20
)

// PackedBlob describes one blob inside a pack.
type PackedBlob struct {
	Type   blob.Type
	ID     blob.ID
	Offset uint32
	Length uint32 // stored (encrypted) length
	RawLen uint32 // plaintext length
}

func encodePackHeader(blobs []PackedBlob) []byte {
	buf := make([]byte, 1, 1+len(blobs)*headerEntrySize)
	buf[0] = packVersion
	for _, b := range blobs {
		buf = append(buf, byte(b.Type))
		buf = binary.LittleEndian.AppendUint32(buf, b.Length)
		buf = binary.LittleEndian.AppendUint32(buf, b.RawLen)
		buf = append(buf, b.ID[:]...)
	}
	return buf
}

// decodePackHeader parses a header plaintext; offsets are computed from the
// lengths and must fit in dataLen.
func decodePackHeader(hdr []byte, dataLen int64) ([]PackedBlob, error) {
	if len(hdr) < 1 || hdr[0] != packVersion {
		return nil, fmt.Errorf("pack header: unknown version: %w", ErrCorrupt)
	}
	hdr = hdr[1:]
	if len(hdr)%headerEntrySize != 0 {
		return nil, fmt.Errorf("pack header: length %d not a multiple of %d: %w", len(hdr), headerEntrySize, ErrCorrupt)
	}
	blobs := make([]PackedBlob, 0, len(hdr)/headerEntrySize)
	var off int64
	for len(hdr) > 0 {
		b := PackedBlob{Type: blob.Type(hdr[0]), Length: binary.LittleEndian.Uint32(hdr[1:]), RawLen: binary.LittleEndian.Uint32(hdr[5:])}
		copy(b.ID[:], hdr[9:])
		if b.Type != blob.Data && b.Type != blob.Tree {
			return nil, fmt.Errorf("pack header: blob %s has unknown type %d: %w", b.ID.Short(), b.Type, ErrCorrupt)
		}
		if b.Length < crypto.Overhead+1 || off+int64(b.Length) > dataLen {
			return nil, fmt.Errorf("pack header: blob %s length %d out of range: %w", b.ID.Short(), b.Length, ErrCorrupt)
		}
		if off > math.MaxUint32 {
			// Offsets are 32-bit; a larger one would silently wrap.
			return nil, fmt.Errorf("pack header: blob %s offset %d out of range: %w", b.ID.Short(), off, ErrCorrupt)
		}
		b.Offset = uint32(off)
		off += int64(b.Length)
		blobs = append(blobs, b)
		hdr = hdr[headerEntrySize:]
	}
	if off != dataLen {
		return nil, fmt.Errorf("pack header: blobs cover %d of %d bytes: %w", off, dataLen, ErrCorrupt)
	}
	return blobs, nil
}

// ParsePack reads the header of a whole pack file. The key authenticates the
// header.
func ParsePack(key *crypto.Key, pack []byte) ([]PackedBlob, error) {
	if len(pack) < 4 {
		return nil, fmt.Errorf("pack of %d bytes too short: %w", len(pack), ErrCorrupt)
	}
	size := int64(len(pack))
	hlen, err := headerLength(pack[size-4:], size)
	if err != nil {
		return nil, err
	}
	return openHeader(key, pack[size-4-hlen:size-4], size-4-hlen)
}

// headerLength decodes a pack's trailing 4 bytes, the length of its sealed
// header, and checks that it fits a pack of size bytes.
func headerLength(tail []byte, size int64) (int64, error) {
	hlen := int64(binary.LittleEndian.Uint32(tail))
	if hlen > maxHeaderSize || hlen+4 > size {
		return 0, fmt.Errorf("pack header length %d out of range: %w", hlen, ErrCorrupt)
	}
	return hlen, nil
}

// openHeader authenticates and decodes the sealed header of a pack whose
// blobs take dataLen bytes.
func openHeader(key *crypto.Key, sealed []byte, dataLen int64) ([]PackedBlob, error) {
	hdr, err := key.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("pack header: %w", err)
	}
	return decodePackHeader(hdr, dataLen)
}

// Index file plaintext: magic, then per pack: pack ID, blob count (uvarint),
// then per blob: type, ID, offset, length, raw length (uvarints).
//
// A doomed index file (its own magic, same body) names packs a prune is
// about to delete: their blobs can still be read (a snapshot written by a
// backup that ran alongside the prune may use them until the prune keeps
// them) but are never offered for deduplication.
var (
	indexMagic       = []byte("TMIX1")
	doomedIndexMagic = []byte("TMIXD")
)

// IndexPack is one pack's entry in an index file.
type IndexPack struct {
	ID    blob.ID
	Blobs []PackedBlob
	// Doomed is set for packs read from a doomed index file.
	Doomed bool
}

// EncodeIndex serializes an index file's plaintext.
func EncodeIndex(packs []IndexPack) []byte { return encodeIndex(indexMagic, packs) }

// EncodeDoomedIndex serializes a doomed index file's plaintext.
func EncodeDoomedIndex(packs []IndexPack) []byte { return encodeIndex(doomedIndexMagic, packs) }

func encodeIndex(magic []byte, packs []IndexPack) []byte {
	buf := bytes.Clone(magic)
	buf = binary.AppendUvarint(buf, uint64(len(packs)))
	for _, p := range packs {
		buf = append(buf, p.ID[:]...)
		buf = binary.AppendUvarint(buf, uint64(len(p.Blobs)))
		for _, b := range p.Blobs {
			buf = append(buf, byte(b.Type))
			buf = append(buf, b.ID[:]...)
			buf = binary.AppendUvarint(buf, uint64(b.Offset))
			buf = binary.AppendUvarint(buf, uint64(b.Length))
			buf = binary.AppendUvarint(buf, uint64(b.RawLen))
		}
	}
	return buf
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or invalid %s: %w", what, ErrCorrupt)
	}
}

func (d *decoder) uvarint(what string, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > max {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.fail(what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// DecodeIndex parses an index file's plaintext; the packs of a doomed
// index file come back with Doomed set.
func DecodeIndex(data []byte) ([]IndexPack, error) {
	doomed := bytes.HasPrefix(data, doomedIndexMagic)
	if !doomed && !bytes.HasPrefix(data, indexMagic) {
		return nil, fmt.Errorf("index: bad magic: %w", ErrCorrupt)
	}
	d := &decoder{b: data[len(indexMagic):]}
	n := d.uvarint("pack count", uint64(len(data)))
	packs := make([]IndexPack, 0, min(n, 1<<16))
	for i := uint64(0); i < n && d.err == nil; i++ {
		p := IndexPack{Doomed: doomed}
		copy(p.ID[:], d.bytes("pack ID", blob.IDSize))
		nb := d.uvarint("blob count", uint64(len(d.b)))
		p.Blobs = make([]PackedBlob, 0, min(nb, 1<<16))
		for j := uint64(0); j < nb && d.err == nil; j++ {
			var b PackedBlob
			t := d.bytes("blob type", 1)
			copy(b.ID[:], d.bytes("blob ID", blob.IDSize))
			b.Offset = uint32(d.uvarint("offset", 1<<32-1))
			b.Length = uint32(d.uvarint("length", 1<<32-1))
			b.RawLen = uint32(d.uvarint("raw length", 1<<32-1))
			if d.err == nil {
				b.Type = blob.Type(t[0])
				if b.Type != blob.Data && b.Type != blob.Tree {
					return nil, fmt.Errorf("index: blob %s has unknown type %d: %w", b.ID.Short(), t[0], ErrCorrupt)
				}
			}
			p.Blobs = append(p.Blobs, b)
		}
		packs = append(packs, p)
	}
	if d.err != nil {
		return nil, fmt.Errorf("index: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("index: %d trailing bytes: %w", len(d.b), ErrCorrupt)
	}
	return packs, nil
}
