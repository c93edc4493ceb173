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
// It is held in memory (about 80 bytes per blob); the on-disk,
// looked-up-per-blob structure the design calls for at 100M-file scale
// replaces this type behind the same methods.
type Index struct {
	mu     sync.RWMutex
	blobs  map[blob.ID]location
	packs  []blob.ID
	packNo map[blob.ID]uint32
}

func newIndex() *Index {
	return &Index{blobs: map[blob.ID]location{}, packNo: map[blob.ID]uint32{}}
}

// Location is a blob's position in the repository.
type Location struct {
	Pack   blob.ID
	Type   blob.Type
	Offset uint32
	Length uint32
	RawLen uint32
}

// Add records the blobs of one pack; adding a pack again changes nothing.
func (x *Index) Add(p IndexPack) { x.add(p) }

// add records the blobs of one pack.
func (x *Index) add(p IndexPack) {
	x.mu.Lock()
	defer x.mu.Unlock()
	no, ok := x.packNo[p.ID]
	if !ok {
		no = uint32(len(x.packs))
		x.packs = append(x.packs, p.ID)
		x.packNo[p.ID] = no
	}
	for _, b := range p.Blobs {
		if _, dup := x.blobs[b.ID]; dup {
			continue // the same blob in two packs: either copy will do
		}
		x.blobs[b.ID] = location{pack: no, offset: b.Offset, length: b.Length, rawLen: b.RawLen, typ: b.Type}
	}
}

// Has reports whether the index knows blob id.
func (x *Index) Has(id blob.ID) bool {
	x.mu.RLock()
	_, ok := x.blobs[id]
	x.mu.RUnlock()
	return ok
}

// Lookup returns the location of blob id.
func (x *Index) Lookup(id blob.ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.blobs[id]
	if !ok {
		return Location{}, false
	}
	return Location{Pack: x.packs[l.pack], Type: l.typ, Offset: l.offset, Length: l.length, RawLen: l.rawLen}, true
}

// Len returns the number of blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs)
}

// Each calls fn for every blob, in no particular order.
func (x *Index) Each(fn func(id blob.ID, l Location)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for id, l := range x.blobs {
		fn(id, Location{Pack: x.packs[l.pack], Type: l.typ, Offset: l.offset, Length: l.length, RawLen: l.rawLen})
	}
}
