package repo

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
)

// This file holds what maintenance (prune, repair) needs beyond backups:
// copying stored blobs into new packs, reading pack headers, and writing
// index files of its own choosing.

// CopyBlob stores an already sealed blob in a new pack even though the
// index has it: prune moves the used blobs out of packs it deletes. The
// caller has authenticated sealed (DecodeBlob). Blobs are copied once per
// handle.
func (r *Repository) CopyBlob(ctx context.Context, t blob.Type, id blob.ID, sealed []byte, rawLen int) error {
	r.mu.Lock()
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return err
	}
	if _, ok := r.pending[id]; ok {
		r.mu.Unlock()
		return nil
	}
	r.pending[id] = struct{}{}
	full := r.pack(t, id, sealed, rawLen)
	r.mu.Unlock()
	if full != nil {
		return r.upload(ctx, full)
	}
	return nil
}

// LoadPackHeader reads and authenticates the header of a stored pack of
// size bytes with two ranged reads, without the blobs.
func (r *Repository) LoadPackHeader(ctx context.Context, h backend.Handle, size int64) ([]PackedBlob, error) {
	if size < 4 {
		return nil, fmt.Errorf("pack %s: %d bytes is too short: %w", h.Name, size, ErrCorrupt)
	}
	tail, err := r.raw.Load(ctx, h, size-4, 4)
	if err != nil {
		return nil, fmt.Errorf("read pack %s header length: %w", h.Name, err)
	}
	hlen, err := headerLength(tail, size)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", h.Name, err)
	}
	sealed, err := r.raw.Load(ctx, h, size-4-hlen, hlen)
	if err != nil {
		return nil, fmt.Errorf("read pack %s header: %w", h.Name, err)
	}
	blobs, err := openHeader(r.key, sealed, size-4-hlen)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w: %w", h.Name, err, ErrCorrupt)
	}
	return blobs, nil
}

// Index files written by maintenance hold at most this many blobs, so
// that none grows too large to read at once.
const maxIndexBlobs = 100000

// SaveIndexFiles writes index files for packs and returns their names.
// They are not merged into this handle's index table. With doomed set they
// are doomed index files (see EncodeDoomedIndex).
func (r *Repository) SaveIndexFiles(ctx context.Context, packs []IndexPack, doomed bool) ([]string, error) {
	encode := EncodeIndex
	if doomed {
		encode = EncodeDoomedIndex
	}
	var names []string
	for len(packs) > 0 {
		n, blobs := 0, 0
		for n < len(packs) && (n == 0 || blobs+len(packs[n].Blobs) <= maxIndexBlobs) {
			blobs += len(packs[n].Blobs)
			n++
		}
		id, err := r.SaveUnpacked(ctx, backend.Index, encode(packs[:n]))
		if err != nil {
			return names, fmt.Errorf("save index: %w", err)
		}
		names = append(names, id.String())
		packs = packs[n:]
	}
	return names, nil
}

// DropIndexTable removes the cache's index table and keeps this handle
// from writing one: after maintenance removed index files, the next open
// builds the table afresh. It also records the removal (see shrink.go),
// since the next open has no table left to notice it by.
func (r *Repository) DropIndexTable() error {
	r.mu.Lock()
	r.noMerge = true
	r.mu.Unlock()
	if r.cacheDir == "" {
		return nil
	}
	r.noteShrink()
	if err := os.Remove(tableFile(r.cacheDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove index table: %w", err)
	}
	return nil
}
