package chunker

import (
	"bytes"
	"io"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/tidemark/tidemark/internal/gentree"
	"pgregory.net/rapid"
)

func chunks(t *testing.T, tb *Table, r io.Reader) [][]byte {
	t.Helper()
	var out [][]byte
	c := tb.New(r)
	for {
		b, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(b))
	}
}

func TestChunkSizesAndReassembly(t *testing.T) {
	tb, err := NewTable([32]byte{1}, DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	data := gentree.RandomBytes(64<<20, 1)
	cs := chunks(t, tb, bytes.NewReader(data))
	if got := bytes.Join(cs, nil); !bytes.Equal(got, data) {
		t.Fatal("chunks do not reassemble the input")
	}
	for i, c := range cs[:len(cs)-1] {
		if len(c) < MinSize || len(c) > MaxSize {
			t.Fatalf("chunk %d has size %d", i, len(c))
		}
	}
	avg := len(data) / len(cs)
	if avg < AvgSize/2 || avg > AvgSize*2 {
		t.Fatalf("average chunk size %d far from %d", avg, AvgSize)
	}
	// Reads of one byte at a time give the same boundaries.
	cs2 := chunks(t, tb, iotest.OneByteReader(bytes.NewReader(data[:8<<20])))
	cs3 := chunks(t, tb, bytes.NewReader(data[:8<<20]))
	if len(cs2) != len(cs3) {
		t.Fatal("boundaries depend on read sizes")
	}
}

func TestBoundariesResync(t *testing.T) {
	tb, _ := NewTable([32]byte{2}, DefaultParams)
	data := gentree.RandomBytes(32<<20, 2)
	a := chunks(t, tb, bytes.NewReader(data))
	// Insert bytes near the start: most later chunks must be unchanged.
	mod := append(append(bytes.Clone(data[:1000]), []byte("inserted!")...), data[1000:]...)
	b := chunks(t, tb, bytes.NewReader(mod))
	seen := map[string]bool{}
	for _, c := range a {
		seen[string(c)] = true
	}
	shared := 0
	for _, c := range b {
		if seen[string(c)] {
			shared++
		}
	}
	if shared < len(a)-3 {
		t.Fatalf("only %d of %d chunks survive a small insert", shared, len(a))
	}
}

func TestSeedChangesBoundaries(t *testing.T) {
	t1, _ := NewTable([32]byte{1}, DefaultParams)
	t2, _ := NewTable([32]byte{9}, DefaultParams)
	data := gentree.RandomBytes(16<<20, 3)
	a, b := chunks(t, t1, bytes.NewReader(data)), chunks(t, t2, bytes.NewReader(data))
	if len(a[0]) == len(b[0]) && len(a[1]) == len(b[1]) {
		t.Fatal("different seeds gave the same boundaries")
	}
}

func TestSmallAndEmpty(t *testing.T) {
	tb, _ := NewTable([32]byte{}, DefaultParams)
	if cs := chunks(t, tb, bytes.NewReader(nil)); len(cs) != 0 {
		t.Fatalf("empty input gave %d chunks", len(cs))
	}
	if cs := chunks(t, tb, bytes.NewReader([]byte("hi"))); len(cs) != 1 || string(cs[0]) != "hi" {
		t.Fatalf("small input: %q", cs)
	}
	if _, err := NewTable([32]byte{}, Params{Min: 10, Avg: 12, Max: 20}); err == nil {
		t.Fatal("non-power-of-two average accepted")
	}
}

func BenchmarkChunker(b *testing.B) {
	tb, _ := NewTable([32]byte{1}, DefaultParams)
	data := gentree.RandomBytes(32<<20, 4)
	b.SetBytes(int64(len(data)))
	c := tb.New(nil)
	for b.Loop() {
		c.Reset(bytes.NewReader(data))
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
	}
}

// pieces reads from data in pieces of the sizes drawn, as files and
// network streams deliver them.
type pieces struct {
	data  []byte
	sizes []int
}

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(p.data))
	if len(p.sizes) > 0 {
		n = min(n, p.sizes[0])
		p.sizes = p.sizes[1:]
	}
	copy(b, p.data[:n])
	p.data = p.data[n:]
	return n, nil
}

// TestBoundariesIndependentOfReads: the chunks depend on the data alone,
// not on how reads deliver it nor on what the chunker (and the size of
// its buffer) met before.
func TestBoundariesIndependentOfReads(t *testing.T) {
	tb, _ := NewTable([32]byte{4}, Params{Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10})
	c := tb.New(nil)
	rapid.Check(t, func(rt *rapid.T) {
		data := gentree.RandomBytes(rapid.IntRange(0, 600<<10).Draw(rt, "size"), rapid.Uint64().Draw(rt, "seed"))
		// The reference: each cut made on all the data that is left.
		var want []int
		for rest := data; len(rest) > 0; {
			n := tb.cut(rest)
			want = append(want, n)
			rest = rest[n:]
		}
		sizes := rapid.SliceOf(rapid.IntRange(1, 100<<10)).Draw(rt, "reads")
		c.Reset(&pieces{data: data, sizes: sizes})
		var got []int
		for {
			chunk, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rt.Fatal(err)
			}
			got = append(got, len(chunk))
		}
		if !slices.Equal(got, want) {
			rt.Fatalf("chunk sizes %v, want %v", got, want)
		}
	})
}
