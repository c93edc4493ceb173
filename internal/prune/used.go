package prune

import (
	"bytes"
	"slices"

	"github.com/tidemark/tidemark/internal/blob"
)

// usedBlobs is the set of blobs the snapshots use, and the pack chosen to
// hold each: a sorted slice of IDs beside a slice of homes, 40 bytes a
// blob. (A map from ID to pack took about 95 bytes a blob, a third of a
// prune's memory at a million files.)
//
// Marking appends, duplicates and all, and sorts and compacts whenever the
// slice has doubled since it last did, so duplicates (a directory listed
// again in each snapshot that changed it) never take more than the set
// itself. seal makes the set final; blobs marked after it (a snapshot
// written while the prune ran) go to late.
type usedBlobs struct {
	ids     []blob.ID
	compact int // len(ids) after the last compaction
	homes   []*pack
	sealed  bool
	late    map[blob.ID]bool
	// start[b] is the position of the first sealed ID whose first two
	// bytes are b or more, so a search looks at a dozen IDs at a million
	// blobs (a search over all of them made prune spend seconds in it).
	start []uint32
}

// compactAt is the fewest IDs worth a compaction.
const compactAt = 1 << 16

// mark adds id; it reports whether id is new, which is known only after
// seal (before, every blob counts as new).
func (u *usedBlobs) mark(id blob.ID) bool {
	if !u.sealed {
		u.ids = append(u.ids, id)
		if len(u.ids) >= max(2*u.compact, compactAt) {
			u.sortCompact()
		}
		return true
	}
	if u.index(id) >= 0 || u.late[id] {
		return false
	}
	if u.late == nil {
		u.late = map[blob.ID]bool{}
	}
	u.late[id] = true
	return true
}

func (u *usedBlobs) sortCompact() {
	slices.SortFunc(u.ids, func(a, b blob.ID) int { return bytes.Compare(a[:], b[:]) })
	u.ids = slices.Compact(u.ids)
	u.compact = len(u.ids)
}

// seal sorts the set and makes room for the homes.
func (u *usedBlobs) seal() {
	u.sortCompact()
	u.ids = slices.Clip(u.ids)
	u.homes = make([]*pack, len(u.ids))
	u.start = make([]uint32, 1<<16+1)
	b := 0
	for i, id := range u.ids {
		for k := prefix(id); b <= k; b++ {
			u.start[b] = uint32(i)
		}
	}
	for ; b <= 1<<16; b++ {
		u.start[b] = uint32(len(u.ids))
	}
	u.sealed = true
}

func prefix(id blob.ID) int { return int(id[0])<<8 | int(id[1]) }

// index returns id's position in the sealed set, or -1.
func (u *usedBlobs) index(id blob.ID) int {
	k := prefix(id)
	lo, hi := int(u.start[k]), int(u.start[k+1])
	i, ok := slices.BinarySearchFunc(u.ids[lo:hi], id, func(a, b blob.ID) int { return bytes.Compare(a[:], b[:]) })
	if !ok {
		return -1
	}
	return lo + i
}

// has reports whether the sealed set holds id.
func (u *usedBlobs) has(id blob.ID) bool { return u.index(id) >= 0 }

// len returns the number of blobs in the sealed set.
func (u *usedBlobs) len() int { return len(u.ids) }
