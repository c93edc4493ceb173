// Package chunker splits streams into content-defined chunks with FastCDC
// (normalized chunking with a gear rolling hash).
//
// Chunk sizes: minimum 512 KiB, average about 1 MiB, maximum 8 MiB. The gear
// table is derived from a per-repository secret, so chunk boundaries, and
// therefore chunk sizes visible in a repository, do not reveal which known
// files it contains.
package chunker

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/zeebo/blake3"
)

// Default chunk size limits.
const (
	MinSize = 512 << 10
	AvgSize = 1 << 20
	MaxSize = 8 << 20
)

// Params are the size limits of a chunker. AvgSize must be a power of two.
type Params struct {
	Min, Avg, Max int
}

// DefaultParams are the limits Tidemark repositories use.
var DefaultParams = Params{Min: MinSize, Avg: AvgSize, Max: MaxSize}

// Table is a gear table with its parameters; it is immutable and safe for
// concurrent use.
type Table struct {
	gear         [256]uint64
	p            Params
	maskS, maskL uint64
}

// NewTable derives a gear table from seed.
func NewTable(seed [32]byte, p Params) (*Table, error) {
	if p.Min <= 0 || p.Avg <= p.Min || p.Max <= p.Avg || p.Avg&(p.Avg-1) != 0 {
		return nil, errors.New("chunker: invalid size parameters")
	}
	t := &Table{p: p}
	h, err := blake3.NewKeyed(seed[:])
	if err != nil {
		return nil, err
	}
	_, _ = h.Write([]byte("tidemark chunker gear table v1"))
	var raw [256 * 8]byte
	if _, err := h.Digest().Read(raw[:]); err != nil {
		return nil, err
	}
	for i := range t.gear {
		t.gear[i] = binary.LittleEndian.Uint64(raw[i*8:])
	}
	bits := 0
	for 1<<bits < p.Avg {
		bits++
	}
	// Normalization level 2: a harder mask before the average size and an
	// easier one after it pull chunk sizes towards the average. The masks use
	// the top bits, which depend on the last 64 bytes of input.
	t.maskS = topBits(bits + 2)
	t.maskL = topBits(bits - 2)
	return t, nil
}

func topBits(n int) uint64 { return ^uint64(0) << (64 - n) }

// cut returns the length of the first chunk of data, which holds either at
// least Max bytes or the rest of the stream.
func (t *Table) cut(data []byte) int {
	n := len(data)
	if n <= t.p.Min {
		return n
	}
	if n > t.p.Max {
		n = t.p.Max
	}
	normal := t.p.Avg
	if normal > n {
		normal = n
	}
	var fp uint64
	i := t.p.Min
	for ; i < normal; i++ {
		fp = (fp << 1) + t.gear[data[i]]
		if fp&t.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		fp = (fp << 1) + t.gear[data[i]]
		if fp&t.maskL == 0 {
			return i + 1
		}
	}
	return n
}

// Chunker reads a stream and returns its chunks. Reuse one per goroutine
// with Reset to avoid reallocating its buffer.
type Chunker struct {
	t          *Table
	r          io.Reader
	buf        []byte
	start, end int
	eof        bool
}

// New returns a chunker for r.
func (t *Table) New(r io.Reader) *Chunker {
	c := &Chunker{t: t}
	c.Reset(r)
	return c
}

// Reset prepares c to chunk a new stream, keeping its buffer.
func (c *Chunker) Reset(r io.Reader) {
	c.r, c.start, c.end, c.eof = r, 0, 0, false
}

// Next returns the next chunk, or io.EOF after the last one. The returned
// slice is valid until the next call.
func (c *Chunker) Next() ([]byte, error) {
	if c.end-c.start < c.t.p.Max && !c.eof {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	if c.start == c.end {
		return nil, io.EOF
	}
	n := c.t.cut(c.buf[c.start:c.end])
	chunk := c.buf[c.start : c.start+n]
	c.start += n
	return chunk, nil
}

// minBuf is the buffer a chunker starts with.
const minBuf = 64 << 10

func (c *Chunker) fill() error {
	if c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	// Max bytes must be available for a cut; a little more saves refills.
	full := c.t.p.Max + c.t.p.Min
	for c.end < full && !c.eof {
		if c.end == len(c.buf) {
			// Buffers start small and grow only for a stream that fills
			// them: most files are small, and a worker per core holding
			// a full buffer (8.5 MiB by default) is memory wasted on a
			// tree of small files. One that met a large file keeps it.
			nb := make([]byte, min(full, max(2*len(c.buf), minBuf)))
			copy(nb, c.buf[:c.end])
			c.buf = nb
		}
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if err == io.EOF {
			c.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}
