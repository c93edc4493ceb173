package prune

import (
	"testing"

	"github.com/tidemark/tidemark/internal/blob"
	"pgregory.net/rapid"
)

// TestUsedBlobs compares the used set with a map: marks with many
// duplicates (compactions on the way), seal, membership, and marks after
// seal, which report exactly the blobs not seen before.
func TestUsedBlobs(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var u usedBlobs
		want := map[blob.ID]bool{}
		// Few distinct IDs, many marks: duplicates dominate.
		pool := rapid.IntRange(1, 3000).Draw(t, "distinct")
		id := func(label string) blob.ID {
			var b blob.ID
			n := rapid.IntRange(0, pool-1).Draw(t, label)
			b[0], b[1], b[31] = byte(n>>8), byte(n), byte(n*7)
			return b
		}
		for range rapid.IntRange(0, 200000).Draw(t, "marks") / 100 {
			for range 100 {
				b := id("mark")
				u.mark(b)
				want[b] = true
			}
		}
		if len(u.ids) > 2*len(want)+compactAt {
			t.Fatalf("%d IDs held for %d distinct blobs: duplicates were not compacted", len(u.ids), len(want))
		}
		u.seal()
		if u.len() != len(want) || len(u.homes) != len(want) {
			t.Fatalf("sealed set holds %d (homes %d), want %d", u.len(), len(u.homes), len(want))
		}
		for b := range want {
			if !u.has(b) {
				t.Fatalf("blob %x marked but not in the set", b[:2])
			}
		}
		for range rapid.IntRange(0, 50).Draw(t, "late") {
			var b blob.ID
			if rapid.Bool().Draw(t, "new") {
				b = id("late")
				b[30] = 1 // never among the marked
			} else {
				b = id("again")
			}
			fresh := u.mark(b)
			if fresh == want[b] {
				t.Fatalf("late mark of %x: fresh %v, seen before %v", b[:2], fresh, want[b])
			}
			want[b] = true
		}
	})
}
