package repo

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/tidemark/tidemark/internal/blob"
)

// The index table is the local cache's on-disk copy of the repository
// index: every blob's location, sorted by ID, memory-mapped and searched in
// place. Opening a repository therefore costs a header read instead of
// decoding every index file into memory, which is what keeps a journal
// backup of a few changed files independent of the repository's size.
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

// table is an open index table.
type table struct {
	data    []byte // the whole file, mapped
	unmap   func() error
	n       int
	fanout  []byte
	packs   []byte
	names   []byte
	entries []byte
}

// tableFile names the index table in a repository's cache directory.
func tableFile(dir string) string { return filepath.Join(dir, "index.tbl") }

// openTable maps an index table; a missing file gives (nil, nil).
func openTable(path string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	data, unmap, err := mapFile(f)
	if err != nil {
		return nil, fmt.Errorf("map index table %s: %w", path, err)
	}
	t, err := parseTable(data)
	if err != nil {
		unmap()
		return nil, fmt.Errorf("index table %s: %w", path, err)
	}
	t.unmap = unmap
	return t, nil
}

// parseTable checks a table's header, fanout and metadata and slices data
// into its sections; it never reads outside data.
func parseTable(data []byte) (*table, error) {
	if len(data) < tableHeader+4*tableFanout || string(data[:8]) != tableMagic {
		return nil, fmt.Errorf("not an index table: %w", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint64(data[8:])
	np := binary.LittleEndian.Uint64(data[16:])
	nn := binary.LittleEndian.Uint64(data[24:])
	const limit = 1 << 40
	if n > limit || np > 1<<tablePackBits || nn > limit {
		return nil, fmt.Errorf("counts out of range: %w", ErrCorrupt)
	}
	meta := uint64(tableHeader + 4*tableFanout)
	want := meta + np*blob.IDSize + nn*blob.IDSize + n*tableEntrySize
	if uint64(len(data)) != want {
		return nil, fmt.Errorf("size %d, want %d: %w", len(data), want, ErrCorrupt)
	}
	metaEnd := meta + (np+nn)*blob.IDSize
	h := sha256.New()
	h.Write(data[:32])
	h.Write(data[tableHeader:metaEnd])
	if !bytes.Equal(h.Sum(nil), data[32:64]) {
		return nil, fmt.Errorf("checksum mismatch: %w", ErrCorrupt)
	}
	t := &table{data: data, n: int(n)}
	t.fanout = data[tableHeader:meta]
	t.packs = data[meta : meta+np*blob.IDSize]
	t.names = data[meta+np*blob.IDSize : metaEnd]
	t.entries = data[metaEnd:]
	prev := uint32(0)
	for i := 0; i < tableFanout; i++ {
		v := binary.LittleEndian.Uint32(t.fanout[4*i:])
		if v < prev || uint64(v) > n {
			return nil, fmt.Errorf("fanout not monotonic: %w", ErrCorrupt)
		}
		prev = v
	}
	if uint64(prev) != n {
		return nil, fmt.Errorf("fanout ends at %d of %d entries: %w", prev, n, ErrCorrupt)
	}
	return t, nil
}

func (t *table) close() error {
	if t == nil || t.unmap == nil {
		return nil
	}
	return t.unmap()
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
	return int(binary.LittleEndian.Uint32(t.fanout[4*i:]))
}

func (t *table) entry(i int) []byte { return t.entries[i*tableEntrySize : (i+1)*tableEntrySize] }

// find returns the entry index of id, or -1.
func (t *table) find(id blob.ID) int {
	b := bucket(id)
	lo, hi := t.fan(b-1), t.fan(b)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch bytes.Compare(t.entry(m)[:blob.IDSize], id[:]) {
		case 0:
			return m
		case -1:
			lo = m + 1
		default:
			hi = m
		}
	}
	return -1
}

// location decodes entry i; ok is false for an entry naming a pack or type
// that does not exist (a damaged table), which then counts as absent.
func (t *table) location(i int) (id blob.ID, l Location, ok bool) {
	e := t.entry(i)
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
	merge := func(fn func(tableEntry)) {
		n := 0
		if old != nil {
			n = old.n
		}
		i, j := 0, 0
		for i < n || j < len(extra) {
			if i < n {
				id, l, ok := old.location(i)
				if !ok {
					i++
					continue
				}
				if j == len(extra) || bytes.Compare(id[:], extra[j].id[:]) <= 0 {
					if j < len(extra) && id == extra[j].id {
						j++
					}
					fn(tableEntry{id, l})
					i++
					continue
				}
			}
			fn(extra[j])
			j++
		}
	}
	packNo := map[blob.ID]uint32{}
	var packs []blob.ID
	var fanout [tableFanout]uint32
	count := 0
	merge(func(e tableEntry) {
		if _, ok := packNo[e.l.Pack]; !ok {
			packNo[e.l.Pack] = uint32(len(packs))
			packs = append(packs, e.l.Pack)
		}
		fanout[bucket(e.id)]++
		count++
	})
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
	merge(func(m tableEntry) {
		copy(e[:], m.id[:])
		binary.LittleEndian.PutUint32(e[32:], packNo[m.l.Pack]|uint32(m.l.Type)<<tablePackBits)
		binary.LittleEndian.PutUint32(e[36:], m.l.Offset)
		binary.LittleEndian.PutUint32(e[40:], m.l.Length)
		binary.LittleEndian.PutUint32(e[44:], m.l.RawLen)
		w.Write(e[:])
	})
	err = w.Flush()
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
