package repo

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/tidemark/tidemark/internal/blob"
)

// The index table is the local cache's on-disk copy of the repository
// index: every blob's location, sorted by ID, searched in place with
// positioned reads. Opening a repository therefore costs a header read
// instead of decoding every index file into memory, which is what keeps a
// journal backup of a few changed files independent of the repository's
// size.
//
// The table is read with pread, not memory-mapped: a lookup reads the few
// kilobytes around its estimated position, and nothing of the table stays
// in the process. A mapping made every lookup fault in the 64 KiB around
// it (the kernel's fault-around), so a few hundred lookups spread over a
// 50 MB table (a journal backup at a million files) mapped most of it and
// counted it as the process's memory.
//
// Layout (little endian):
//
//	header  64 bytes: magic, entries, packs, names, then the SHA-256 of
//	        the header's first 32 bytes, the fanout, packs and names
//	fanout  4096 × uint32: the number of entries whose ID's first 12 bits
//	        are <= i
//	packs   packs × 32-byte pack ID
//	names   names × 32-byte index file name (the index files merged in)
//	entries entries × 48 bytes: ID, pack number | type<<28, offset,
//	        length, raw length
//
// The entries are not covered by the checksum (hashing them would make
// opening O(repository) again). The file is written with fsync and renamed
// into place, so it is never torn; a flipped bit in an entry makes a blob
// unfindable or its load fail authentication, never silently wrong.
const (
	tableMagic     = "TMIDXT01"
	tableHeader    = 64
	tableFanout    = 1 << 12
	tableEntrySize = 48
	tablePackBits  = 28
)

// table is an open index table. Its header, fanout, packs and names are in
// memory (36 bytes a pack); its entries are read from the file as needed,
// by any number of goroutines at once.
type table struct {
	r       io.ReaderAt
	closer  io.Closer
	n       int
	fanout  []uint32
	packs   []byte
	names   []byte
	entries int64 // offset of the first entry
}

// tableFile names the index table in a repository's cache directory.
func tableFile(dir string) string { return filepath.Join(dir, "index.tbl") }

// openTable opens an index table; a missing file gives (nil, nil).
func openTable(path string) (*table, error) {
	f, err := openShared(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("index table %s: %w", path, err)
	}
	t, err := parseTable(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("index table %s: %w", path, err)
	}
	t.closer = f
	return t, nil
}

// parseTable checks a table's header, fanout and metadata, read from r
// (size bytes long), and keeps r for the entries; it never reads outside
// size.
func parseTable(r io.ReaderAt, size int64) (*table, error) {
	head := make([]byte, tableHeader+4*tableFanout)
	if size < int64(len(head)) {
		return nil, fmt.Errorf("not an index table: %w", ErrCorrupt)
	}
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(head[:8]) != tableMagic {
		return nil, fmt.Errorf("not an index table: %w", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint64(head[8:])
	np := binary.LittleEndian.Uint64(head[16:])
	nn := binary.LittleEndian.Uint64(head[24:])
	const limit = 1 << 40
	if n > limit || np > 1<<tablePackBits || nn > 1<<24 {
		return nil, fmt.Errorf("counts out of range: %w", ErrCorrupt)
	}
	meta := uint64(len(head))
	want := meta + np*blob.IDSize + nn*blob.IDSize + n*tableEntrySize
	if uint64(size) != want {
		return nil, fmt.Errorf("size %d, want %d: %w", size, want, ErrCorrupt)
	}
	ids := make([]byte, (np+nn)*blob.IDSize)
	if _, err := r.ReadAt(ids, int64(meta)); err != nil && len(ids) > 0 {
		return nil, fmt.Errorf("read packs and names: %w", err)
	}
	h := sha256.New()
	h.Write(head[:32])
	h.Write(head[tableHeader:])
	h.Write(ids)
	if !bytes.Equal(h.Sum(nil), head[32:64]) {
		return nil, fmt.Errorf("checksum mismatch: %w", ErrCorrupt)
	}
	t := &table{r: r, n: int(n), fanout: make([]uint32, tableFanout),
		packs: ids[:np*blob.IDSize], names: ids[np*blob.IDSize:], entries: int64(meta) + int64(len(ids))}
	prev := uint32(0)
	for i := range t.fanout {
		v := binary.LittleEndian.Uint32(head[tableHeader+4*i:])
		if v < prev || uint64(v) > n {
			return nil, fmt.Errorf("fanout not monotonic: %w", ErrCorrupt)
		}
		t.fanout[i], prev = v, v
	}
	if uint64(prev) != n {
		return nil, fmt.Errorf("fanout ends at %d of %d entries: %w", prev, n, ErrCorrupt)
	}
	return t, nil
}

func (t *table) close() error {
	if t == nil || t.closer == nil {
		return nil
	}
	return t.closer.Close()
}

// nameSet returns the index files merged into t.
func (t *table) nameSet() map[string]bool {
	m := make(map[string]bool, len(t.names)/blob.IDSize)
	for i := 0; i < len(t.names); i += blob.IDSize {
		m[hex.EncodeToString(t.names[i:i+blob.IDSize])] = true
	}
	return m
}

// bucket is an ID's fanout slot: its first 12 bits.
func bucket(id blob.ID) int { return int(id[0])<<4 | int(id[1])>>4 }

func (t *table) fan(i int) int {
	if i < 0 {
		return 0
	}
	return int(t.fanout[i])
}

// findWindow is how many entries a lookup reads at once (3 KiB). IDs are
// uniformly distributed, so the position estimated from an ID's bits is
// off by about the square root of a bucket's size: 16 entries at a million
// blobs, 50 at ten million, and one read nearly always holds the entry.
const findWindow = 64

// find returns the location of id; ok is false when the table does not
// hold it, holds it in an entry naming a pack or type that does not exist
// (a damaged table), or cannot be read (the blob then counts as absent,
// which costs a re-upload, never a wrong answer).
func (t *table) find(id blob.ID) (l Location, ok bool) {
	b := bucket(id)
	lo, hi := t.fan(b-1), t.fan(b)
	var buf [findWindow * tableEntrySize]byte
	// The first read is centred on the position interpolated from the ID
	// bits after the bucket's 12; any further one halves what is left.
	frac := float64(binary.BigEndian.Uint64(id[1:9])<<4) / (1 << 64)
	pos := lo + int(frac*float64(hi-lo))
	for lo < hi {
		start, end := lo, hi
		if hi-lo > findWindow {
			start = min(max(pos-findWindow/2, lo), hi-findWindow)
			end = start + findWindow
		}
		w := buf[:(end-start)*tableEntrySize]
		if _, err := t.r.ReadAt(w, t.entries+int64(start)*tableEntrySize); err != nil {
			return Location{}, false
		}
		i := sort.Search(end-start, func(i int) bool {
			return bytes.Compare(w[i*tableEntrySize:i*tableEntrySize+blob.IDSize], id[:]) >= 0
		})
		switch {
		case i < end-start && bytes.Equal(w[i*tableEntrySize:i*tableEntrySize+blob.IDSize], id[:]):
			_, l, ok := t.decode(w[i*tableEntrySize : (i+1)*tableEntrySize])
			return l, ok
		case i == 0 && start > lo:
			hi = start
		case i == end-start && end < hi:
			lo = end
		default:
			return Location{}, false
		}
		pos = int(uint(lo+hi) >> 1)
	}
	return Location{}, false
}

// decode decodes an entry; ok is false for an entry naming a pack or type
// that does not exist (a damaged table), which then counts as absent.
func (t *table) decode(e []byte) (id blob.ID, l Location, ok bool) {
	copy(id[:], e)
	w := binary.LittleEndian.Uint32(e[32:])
	pack := int(w & (1<<tablePackBits - 1))
	typ := blob.Type(w >> tablePackBits)
	if (pack+1)*blob.IDSize > len(t.packs) || (typ != blob.Data && typ != blob.Tree) {
		return id, l, false
	}
	copy(l.Pack[:], t.packs[pack*blob.IDSize:])
	l.Type = typ
	l.Offset = binary.LittleEndian.Uint32(e[36:])
	l.Length = binary.LittleEndian.Uint32(e[40:])
	l.RawLen = binary.LittleEndian.Uint32(e[44:])
	return id, l, true
}

// location reads and decodes entry i (see decode).
func (t *table) location(i int) (id blob.ID, l Location, ok bool) {
	var e [tableEntrySize]byte
	if _, err := t.r.ReadAt(e[:], t.entries+int64(i)*tableEntrySize); err != nil {
		return id, l, false
	}
	return t.decode(e[:])
}

// iter returns an iterator over the table's entries in ID order, reading
// the file sequentially.
func (t *table) iter() *tableIter {
	return &tableIter{t: t, left: t.n,
		br: bufio.NewReaderSize(io.NewSectionReader(t.r, t.entries, int64(t.n)*tableEntrySize), 256<<10)}
}

// tableIter reads a table's entries one after the other; entries naming no
// valid pack or type are skipped.
type tableIter struct {
	t    *table
	br   *bufio.Reader
	left int
	cur  tableEntry
	err  error
}

// next advances to the next valid entry; it returns false at the end or on
// a read error (then in err).
func (it *tableIter) next() bool {
	var e [tableEntrySize]byte
	for it.left > 0 && it.err == nil {
		it.left--
		if _, err := io.ReadFull(it.br, e[:]); err != nil {
			it.err = fmt.Errorf("read index table: %w", err)
			return false
		}
		if id, l, ok := it.t.decode(e[:]); ok {
			it.cur = tableEntry{id, l}
			return true
		}
	}
	return false
}

// each calls fn for every valid entry, in ID order.
func (t *table) each(fn func(id blob.ID, l Location)) error {
	it := t.iter()
	for it.next() {
		fn(it.cur.id, it.cur.l)
	}
	return it.err
}

// tableEntry is one blob on its way into a new table.
type tableEntry struct {
	id blob.ID
	l  Location
}

// writeTable writes a table holding old's entries (old may be nil) plus
// extra, merged in ID order, recording names as the index files it covers.
// The file is synced and renamed into place, so a crash leaves the old
// table or the new one, and concurrent readers keep their mapping.
func writeTable(path string, old *table, extra []tableEntry, names []string) error {
	slices.SortFunc(extra, func(a, b tableEntry) int { return bytes.Compare(a.id[:], b.id[:]) })
	extra = slices.CompactFunc(extra, func(a, b tableEntry) bool { return a.id == b.id })

	// merge visits old's entries and extra's in ID order; old entries win
	// on equal IDs, as either copy will do. It runs twice (count, then
	// write) so that memory stays O(packs + extra), not O(table).
	merge := func(fn func(tableEntry)) error {
		var it *tableIter
		has := false
		if old != nil {
			it = old.iter()
			has = it.next()
		}
		j := 0
		for has || j < len(extra) {
			if has && (j == len(extra) || bytes.Compare(it.cur.id[:], extra[j].id[:]) <= 0) {
				if j < len(extra) && it.cur.id == extra[j].id {
					j++
				}
				fn(it.cur)
				has = it.next()
				continue
			}
			fn(extra[j])
			j++
		}
		if it != nil && it.err != nil {
			return fmt.Errorf("write index table: %w", it.err)
		}
		return nil
	}
	packNo := map[blob.ID]uint32{}
	var packs []blob.ID
	var fanout [tableFanout]uint32
	count := 0
	err := merge(func(e tableEntry) {
		if _, ok := packNo[e.l.Pack]; !ok {
			packNo[e.l.Pack] = uint32(len(packs))
			packs = append(packs, e.l.Pack)
		}
		fanout[bucket(e.id)]++
		count++
	})
	if err != nil {
		return err
	}
	if len(packs) > 1<<tablePackBits {
		return fmt.Errorf("write index table: %d packs exceed the table's limit", len(packs))
	}
	slices.Sort(names)
	names = slices.Compact(names)

	for k := 1; k < tableFanout; k++ {
		fanout[k] += fanout[k-1]
	}
	meta := make([]byte, 0, 4*tableFanout+(len(packs)+len(names))*blob.IDSize)
	for _, v := range fanout {
		meta = binary.LittleEndian.AppendUint32(meta, v)
	}
	for _, p := range packs {
		meta = append(meta, p[:]...)
	}
	for _, nm := range names {
		raw, err := hex.DecodeString(nm)
		if err != nil || len(raw) != blob.IDSize {
			return fmt.Errorf("write index table: index file name %q is not a 64-digit hex ID", nm)
		}
		meta = append(meta, raw...)
	}
	hdr := make([]byte, tableHeader)
	copy(hdr, tableMagic)
	binary.LittleEndian.PutUint64(hdr[8:], uint64(count))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(packs)))
	binary.LittleEndian.PutUint64(hdr[24:], uint64(len(names)))
	h := sha256.New()
	h.Write(hdr[:32])
	h.Write(meta)
	copy(hdr[32:], h.Sum(nil))

	tmp, err := os.CreateTemp(filepath.Dir(path), ".index-*.tmp")
	if err != nil {
		return fmt.Errorf("write index table: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	w.Write(hdr)
	w.Write(meta)
	var e [tableEntrySize]byte
	err = merge(func(m tableEntry) {
		copy(e[:], m.id[:])
		binary.LittleEndian.PutUint32(e[32:], packNo[m.l.Pack]|uint32(m.l.Type)<<tablePackBits)
		binary.LittleEndian.PutUint32(e[36:], m.l.Offset)
		binary.LittleEndian.PutUint32(e[40:], m.l.Length)
		binary.LittleEndian.PutUint32(e[44:], m.l.RawLen)
		w.Write(e[:])
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write index table %s: %w", path, err)
	}
	return nil
}
