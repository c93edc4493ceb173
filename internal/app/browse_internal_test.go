package app

import (
	"math"
	"testing"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
)

// TestStatsSaturate: totals that would overflow stay at the maximum
// instead of wrapping around to a small number.
func TestStatsSaturate(t *testing.T) {
	for _, tc := range []struct{ a, b, want uint64 }{
		{1, 2, 3},
		{math.MaxUint64 - 1, 1, math.MaxUint64},
		{math.MaxUint64 - 1, 2, math.MaxUint64},
		{math.MaxUint64, math.MaxUint64, math.MaxUint64},
		{math.MaxUint64, 0, math.MaxUint64},
	} {
		if got := addSat(tc.a, tc.b); got != tc.want {
			t.Errorf("addSat(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	s := RepoStats{UniqueBytes: math.MaxUint64 - 10, StoredBytes: math.MaxUint64 - 5, DataBlobs: math.MaxUint64}
	s.add(repo.Location{Type: blob.Data, RawLen: math.MaxUint32, Length: 3})
	s.add(repo.Location{Type: blob.Tree, RawLen: 1, Length: math.MaxUint32})
	want := RepoStats{UniqueBytes: math.MaxUint64, StoredBytes: math.MaxUint64, DataBlobs: math.MaxUint64, TreeBlobs: 1}
	if s != want {
		t.Fatalf("stats %+v, want %+v", s, want)
	}
}
