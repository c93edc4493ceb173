// Package snapshottest helps tests compare what snapshots hold.
package snapshottest

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// ContentDigests reads the content of every file below tree id and
// returns its SHA-256 by path: two snapshots read alike when their digests
// are equal.
func ContentDigests(ctx context.Context, r *repo.Repository, id blob.ID) (map[string][32]byte, error) {
	out := map[string][32]byte{}
	err := snapshot.Walk(ctx, r, id, "", func(path string, n *snapshot.Node) error {
		if n.Type != snapshot.File {
			return nil
		}
		h := sha256.New()
		for _, c := range n.Content {
			data, err := r.LoadBlob(ctx, blob.Data, c)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			h.Write(data)
		}
		out[path] = [32]byte(h.Sum(nil))
		return nil
	})
	return out, err
}
