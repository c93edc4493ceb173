package repo

import (
	"sync"

	"github.com/tidemark/tidemark/internal/blob"
)

// location is where a blob lives; packs are stored once in Index.packs.
type location struct {
	pack   uint32
	offset uint32
	length uint32
	rawLen uint32
	typ    blob.Type
}

// Index maps blob IDs to pack locations. It is safe for concurrent use.
//
// Two layers: an optional memory-mapped table in the local cache (see
// indextable.go) holding what earlier runs indexed, and an in-memory map of
// what the table lacks: index files added since it was written and the
// packs this process uploads. Without a cache everything is in memory.
type Index struct {
	mu     sync.RWMutex
	base   *table
	blobs  map[blob.ID]location
	packs  []blob.ID
	packNo map[blob.ID]uint32
	// doomed holds the blobs of doomed index files (see EncodeDoomedIndex):
	// Lookup finds them, Has and Each do not.
	// They are few and short-lived, so they are kept expanded (setBase
	// renumbers packs).
	doomed map[blob.ID]Location
	// foreign is set once Add took packs from outside the repository
	// handle's own bookkeeping (check reads index files itself): the
	// overlay may then hold blobs of index files it cannot name, and must
	// not be merged into the table.
	foreign bool
}

func newIndex() *Index {
	return &Index{blobs: map[blob.ID]location{}, packNo: map[blob.ID]uint32{}, doomed: map[blob.ID]Location{}}
}

// Location is a blob's position in the repository.
type Location struct {
	Pack   blob.ID
	Type   blob.Type
	Offset uint32
	Length uint32
	RawLen uint32
	// Doomed is set when only a doomed index file names the blob: its
	// pack may be gone once the prune that wrote it has finished.
	Doomed bool
}

// Add records the blobs of one pack; adding a pack again changes nothing.
// A doomed pack's blobs are only found by Lookup.
func (x *Index) Add(p IndexPack) {
	x.add(p)
	x.mu.Lock()
	x.foreign = true
	x.mu.Unlock()
}

// add records the blobs of one pack.
func (x *Index) add(p IndexPack) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p.Doomed {
		for _, b := range p.Blobs {
			x.doomed[b.ID] = Location{Pack: p.ID, Type: b.Type, Offset: b.Offset, Length: b.Length, RawLen: b.RawLen, Doomed: true}
		}
		return
	}
	no, ok := x.packNo[p.ID]
	if !ok {
		no = uint32(len(x.packs))
		x.packs = append(x.packs, p.ID)
		x.packNo[p.ID] = no
	}
	// A blob the table holds too is not looked for there: either copy
	// will do, and a table lookup per blob (a read) made adding a
	// repository's index files cost a million reads. Whole files the table
	// holds are skipped by Repository.AddIndexFile instead.
	for _, b := range p.Blobs {
		if _, dup := x.blobs[b.ID]; dup {
			continue // the same blob in two packs: either copy will do
		}
		x.blobs[b.ID] = location{pack: no, offset: b.Offset, length: b.Length, rawLen: b.RawLen, typ: b.Type}
	}
}

// Has reports whether the index offers blob id for deduplication: doomed
// blobs are not offered.
func (x *Index) Has(id blob.ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.live(id)
	return ok
}

// Lookup returns the location of blob id, doomed or not.
func (x *Index) Lookup(id blob.ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if l, ok := x.live(id); ok {
		return l, true
	}
	if l, ok := x.doomed[id]; ok {
		return l, true
	}
	return Location{}, false
}

// live looks id up in the table and the overlay. x.mu must be held.
func (x *Index) live(id blob.ID) (Location, bool) {
	if l, ok := x.blobs[id]; ok {
		return x.expand(l), true
	}
	if x.base != nil {
		return x.base.find(id)
	}
	return Location{}, false
}

func (x *Index) expand(l location) Location {
	return Location{Pack: x.packs[l.pack], Type: l.typ, Offset: l.offset, Length: l.length, RawLen: l.rawLen}
}

// Len returns the number of blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := len(x.blobs)
	if x.base != nil {
		n += x.base.n
	}
	return n
}

// Each calls fn for every blob, in no particular order. It fails when the
// cache's index table cannot be read.
func (x *Index) Each(fn func(id blob.ID, l Location)) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.base != nil {
		if err := x.base.each(fn); err != nil {
			return err
		}
	}
	for id, l := range x.blobs {
		fn(id, x.expand(l))
	}
	return nil
}

// overlay returns the in-memory entries, for merging into a new table.
func (x *Index) overlay() []tableEntry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]tableEntry, 0, len(x.blobs))
	for id, l := range x.blobs {
		out = append(out, tableEntry{id, x.expand(l)})
	}
	return out
}

// overlayLen returns the number of blobs held in memory, and whether they
// may be merged into a table (none came through Add).
func (x *Index) overlayLen() (int, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs), !x.foreign
}

// baseLen is the number of entries in the table layer.
func (x *Index) baseLen() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.base == nil {
		return 0
	}
	return x.base.n
}

// baseTable is the table layer (nil for none). Only merges, one at a time,
// replace it.
func (x *Index) baseTable() *table {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.base
}

// overlayExcept returns the in-memory entries whose packs are not in
// pending, for merging into a new table while a backup goes on.
func (x *Index) overlayExcept(pending map[blob.ID]bool) []tableEntry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]tableEntry, 0, len(x.blobs))
	for id, l := range x.blobs {
		if e := x.expand(l); !pending[e.Pack] {
			out = append(out, tableEntry{id, e})
		}
	}
	return out
}

// setBaseWith replaces the table layer with t, which holds the overlay
// entries merged (and every entry of the old table); the overlay keeps the
// rest, added meanwhile or not yet in an index file.
func (x *Index) setBaseWith(t *table, merged []tableEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.base.close()
	x.base = t
	for _, e := range merged {
		delete(x.blobs, e.id)
	}
	// Pack numbers stay valid: x.packs only grows while the overlay is
	// in use; emptied entirely, it starts afresh.
	if len(x.blobs) == 0 {
		x.packs = nil
		x.packNo = map[blob.ID]uint32{}
	}
}

// setBase replaces the table layer and empties the overlay, which the new
// table must already hold.
func (x *Index) setBase(t *table) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.base.close()
	x.base = t
	x.blobs = map[blob.ID]location{}
	x.packs = nil
	x.packNo = map[blob.ID]uint32{}
}

// close unmaps the table layer.
func (x *Index) close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	err := x.base.close()
	x.base = nil
	return err
}

// reset forgets every blob, table layer included.
func (x *Index) reset() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	err := x.base.close()
	x.base = nil
	x.blobs = map[blob.ID]location{}
	x.doomed = map[blob.ID]Location{}
	x.packs = nil
	x.packNo = map[blob.ID]uint32{}
	x.foreign = false
	return err
}
