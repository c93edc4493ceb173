package repair

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
)

// Salvage is what became of one damaged pack: its intact blobs were copied
// into new packs, the others are lost, and the pack left the index and
// the repository.
type Salvage struct {
	Pack string `json:"pack"`
	// Damage says why the pack was repaired (its header, or the blobs
	// that failed), for the record.
	Damage string `json:"damage,omitempty"`
	// Salvaged counts the blobs copied into new packs, Elsewhere those
	// another pack already holds intact.
	Salvaged  int `json:"salvaged"`
	Elsewhere int `json:"elsewhere"`
	// Lost are the blobs (type:ID) that could not be read intact from
	// the pack and that no other pack holds.
	Lost []string `json:"lost,omitempty"`
}

// PacksResult says what RepairPacks did.
type PacksResult struct {
	Packs []Salvage `json:"packs"`
	// IndexFilesRewritten were rewritten without the repaired packs.
	IndexFilesRewritten int `json:"index_files_rewritten"`
}

// salvager copies the intact blobs of damaged packs into new packs.
type salvager struct {
	r *repo.Repository
	// others: for each blob, the other packs the index files name for it.
	others map[blob.ID][]blob.ID
	// damaged are the packs being repaired: a copy there does not count.
	damaged map[blob.ID]bool
}

// salvage reads every blob entries names in pack h on its own, authenticates
// it and copies it into a new pack unless an intact copy exists in a pack
// that is not being repaired. The caller flushes the repository.
func (s *salvager) salvage(ctx context.Context, h backend.Handle, id blob.ID, entries []repo.PackedBlob) (Salvage, error) {
	res := Salvage{Pack: id.String()}
	for _, b := range entries {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if slices.ContainsFunc(s.others[b.ID], func(p blob.ID) bool { return !s.damaged[p] }) {
			res.Elsewhere++
			continue
		}
		sealed, err := s.r.Raw().Load(ctx, h, int64(b.Offset), int64(b.Length))
		if err == nil {
			_, err = s.r.DecodeBlob(sealed, b.ID, b.Type, int(b.RawLen))
		}
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if !damage(err) {
				return res, fmt.Errorf("read blob %s of pack %s: %w", b.ID.Short(), id.Short(), err)
			}
			res.Lost = append(res.Lost, b.Type.String()+":"+b.ID.String())
			continue
		}
		if err := s.r.CopyBlob(ctx, b.Type, b.ID, sealed, int(b.RawLen)); err != nil {
			return res, fmt.Errorf("copy blob %s of pack %s: %w", b.ID.Short(), id.Short(), err)
		}
		res.Salvaged++
	}
	sort.Strings(res.Lost)
	return res, nil
}

// damage reports whether err says that stored data is bad (as opposed to
// a failure to reach it).
func damage(err error) bool {
	return errors.Is(err, repo.ErrCorrupt) || errors.Is(err, backend.ErrShortObject) || errors.Is(err, backend.ErrNotFound)
}

// RepairPacks repairs the packs ids (damaged, as check --read-data or
// verify reported them): it copies every blob that still reads intact into
// new packs, rewrites the index files that name the packs without them,
// and deletes the packs. Blobs that cannot be read are lost; `repair
// snapshots` then names the files that lose them. Once done, no backup
// deduplicates against a damaged blob again: it stores the data anew. The
// caller holds an exclusive lock.
func RepairPacks(ctx context.Context, r *repo.Repository, ids []blob.ID, log func(string, ...any)) (PacksResult, error) {
	var res PacksResult
	s := &salvager{r: r, others: map[blob.ID][]blob.ID{}, damaged: map[blob.ID]bool{}}
	for _, id := range ids {
		s.damaged[id] = true
	}
	names, err := r.IndexFiles(ctx)
	if err != nil {
		return res, err
	}
	// What the index files say of the packs, and which files name them.
	entries := map[blob.ID][]repo.PackedBlob{}
	var touched []string
	files := map[string][]repo.IndexPack{}
	for _, n := range names {
		ips, err := r.LoadIndexFile(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			// A damaged index file is repair index's business.
			log("index file %s: %v (left alone; run `tidemark repair index`)", n, err)
			continue
		}
		names := false
		for _, ip := range ips {
			for _, b := range ip.Blobs {
				if !ip.Doomed {
					s.others[b.ID] = append(s.others[b.ID], ip.ID)
				}
			}
			if s.damaged[ip.ID] && !ip.Doomed {
				entries[ip.ID] = append(entries[ip.ID], ip.Blobs...)
				names = true
			}
		}
		if names {
			touched = append(touched, n)
			files[n] = ips
		}
	}
	for _, id := range ids {
		h, err := packHandle(ctx, r, id)
		if err != nil {
			return res, err
		}
		sal := Salvage{Pack: id.String()}
		blobs := entries[id]
		if h.Name != "" {
			// The header may name blobs the index lost; both lists are
			// tried, each blob once.
			if size, err := r.Raw().Stat(ctx, h); err == nil {
				hdr, herr := r.LoadPackHeader(ctx, h, size)
				switch {
				case herr == nil:
					blobs = mergeEntries(blobs, hdr)
				case !damage(herr):
					return res, fmt.Errorf("read header of pack %s: %w", id, herr)
				default:
					sal.Damage = herr.Error()
				}
			}
			if sal, err = s.salvageWith(ctx, h, id, blobs, sal.Damage); err != nil {
				return res, err
			}
		} else {
			sal.Damage = "not stored"
			for _, b := range blobs {
				if !slices.ContainsFunc(s.others[b.ID], func(p blob.ID) bool { return !s.damaged[p] }) {
					sal.Lost = append(sal.Lost, b.Type.String()+":"+b.ID.String())
				} else {
					sal.Elsewhere++
				}
			}
			sort.Strings(sal.Lost)
		}
		res.Packs = append(res.Packs, sal)
	}
	// The copies and their index file are durable before anything that
	// named the damaged packs goes.
	if err := r.Flush(ctx); err != nil {
		return res, fmt.Errorf("store salvaged blobs: %w", err)
	}
	for _, n := range touched {
		keep := slices.DeleteFunc(slices.Clone(files[n]), func(ip repo.IndexPack) bool { return s.damaged[ip.ID] })
		if len(keep) > 0 {
			if _, err := r.SaveIndexFiles(ctx, keep, keep[0].Doomed); err != nil {
				return res, err
			}
		}
		if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.Index, Name: n}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return res, fmt.Errorf("remove index file %s: %w", n, err)
		}
		res.IndexFilesRewritten++
	}
	if err := r.DropIndexTable(); err != nil {
		return res, err
	}
	for _, id := range ids {
		if err := removePack(ctx, r, id); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (s *salvager) salvageWith(ctx context.Context, h backend.Handle, id blob.ID, blobs []repo.PackedBlob, why string) (Salvage, error) {
	sal, err := s.salvage(ctx, h, id, blobs)
	sal.Damage = why
	if sal.Damage == "" && len(sal.Lost) > 0 {
		sal.Damage = fmt.Sprintf("%d blobs failed to read intact", len(sal.Lost))
	}
	return sal, err
}

// mergeEntries adds to a the entries of b it lacks.
func mergeEntries(a, b []repo.PackedBlob) []repo.PackedBlob {
	seen := map[blob.ID]bool{}
	for _, e := range a {
		seen[e.ID] = true
	}
	for _, e := range b {
		if !seen[e.ID] {
			a = append(a, e)
			seen[e.ID] = true
		}
	}
	return a
}

// packHandle finds where pack id is stored (data or trees); an empty
// Handle when it is not stored at all.
func packHandle(ctx context.Context, r *repo.Repository, id blob.ID) (backend.Handle, error) {
	for _, t := range []backend.FileType{backend.Data, backend.Tree} {
		h := backend.Handle{Type: t, Name: id.String()}
		if _, err := r.Raw().Stat(ctx, h); err == nil {
			return h, nil
		} else if !errors.Is(err, backend.ErrNotFound) {
			return backend.Handle{}, fmt.Errorf("look for pack %s: %w", id, err)
		}
	}
	return backend.Handle{}, nil
}

// removePack deletes a repaired pack wherever it is stored.
func removePack(ctx context.Context, r *repo.Repository, id blob.ID) error {
	for _, t := range []backend.FileType{backend.Data, backend.Tree} {
		err := r.Backend().Remove(ctx, backend.Handle{Type: t, Name: id.String()})
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("remove repaired pack %s: %w", id, err)
		}
	}
	return nil
}
