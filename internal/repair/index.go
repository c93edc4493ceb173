package repair

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
)

// PackProblem is a pack whose header could not be read: the blobs the old
// index named in it were salvaged where they read intact, and the pack
// left the index and the repository.
type PackProblem struct {
	Pack string `json:"pack"`
	Err  string `json:"error"`
	Salvage
}

// IndexResult says what RebuildIndex found and did.
type IndexResult struct {
	Packs      int `json:"packs"`
	Blobs      int `json:"blobs"`
	OldFiles   int `json:"old_files"`
	NewFiles   int `json:"new_files"`
	NewlyFound int `json:"newly_found"` // packs no old index file named
	// Dropped are packs the old index named that are not stored.
	Dropped []string `json:"dropped,omitempty"`
	// Unreadable are packs whose header could not be read.
	Unreadable []PackProblem `json:"unreadable,omitempty"`
	// DamagedIndexFiles could not be read; their packs are re-read from
	// their headers like all others.
	DamagedIndexFiles []string `json:"damaged_index_files,omitempty"`
}

// headerWorkers bounds the concurrent header reads: two ranged reads per
// pack, so remote repositories are latency bound.
const headerWorkers = 8

// RebuildIndex writes a new index from the headers of every stored pack
// and then removes the old index files. The caller holds an exclusive
// lock. Killed before the end, both old and new files remain, which only
// names packs twice.
func RebuildIndex(ctx context.Context, r *repo.Repository, log func(string, ...any)) (IndexResult, error) {
	var res IndexResult
	old := map[blob.ID]repo.IndexPack{}
	names, err := r.IndexFiles(ctx)
	if err != nil {
		return res, err
	}
	res.OldFiles = len(names)
	for _, n := range names {
		ips, err := r.LoadIndexFile(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.DamagedIndexFiles = append(res.DamagedIndexFiles, n)
			log("index file %s: %v", n, err)
			continue
		}
		for _, ip := range ips {
			if prev, ok := old[ip.ID]; !ok || prev.Doomed {
				old[ip.ID] = ip
			}
		}
	}
	type stored struct {
		h    backend.Handle
		id   blob.ID
		size int64
	}
	var packs []stored
	listed := map[blob.ID]bool{}
	for _, ns := range []backend.FileType{backend.Data, backend.Tree} {
		err := r.Raw().List(ctx, ns, func(name string, size int64) error {
			id, err := blob.ParseID(name)
			if err != nil {
				log("%s/%s is not a pack name; left alone", ns, name)
				return nil
			}
			packs = append(packs, stored{backend.Handle{Type: ns, Name: name}, id, size})
			listed[id] = true
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("list %s packs: %w", ns, err)
		}
	}
	for id, ip := range old {
		// A doomed pack (of a prune that did not finish) being gone is
		// what that prune meant.
		if !listed[id] && !ip.Doomed {
			res.Dropped = append(res.Dropped, id.String())
		}
	}
	sort.Strings(res.Dropped)

	// Read the headers in parallel.
	out := make([]repo.IndexPack, len(packs))
	errs := make([]error, len(packs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range headerWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := packs[i]
				hdr, err := r.LoadPackHeader(ctx, p.h, p.size)
				if err == nil && len(hdr) > 0 && repo.PackType(hdr[0].Type) != p.h.Type {
					err = fmt.Errorf("pack %s holds %s blobs but is stored under %s: %w", p.id.Short(), hdr[0].Type, p.h.Type, repo.ErrCorrupt)
				}
				out[i], errs[i] = repo.IndexPack{ID: p.id, Blobs: hdr}, err
			}
		}()
	}
	for i := range packs {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	// A pack whose header cannot be read is damaged: its blobs are read
	// one by one, as the old index placed them, and those still intact
	// are copied into new packs. Keeping its entries instead would let
	// backups deduplicate against damaged data for good.
	s := &salvager{r: r, others: map[blob.ID][]blob.ID{}, damaged: map[blob.ID]bool{}}
	for i, p := range packs {
		if errs[i] != nil {
			s.damaged[p.id] = true
			continue
		}
		for _, b := range out[i].Blobs {
			s.others[b.ID] = append(s.others[b.ID], p.id)
		}
	}
	var keep []repo.IndexPack
	var salvaged []blob.ID
	for i, p := range packs {
		if err := errs[i]; err != nil {
			if !damage(err) {
				return res, fmt.Errorf("read header of pack %s: %w", p.id, err)
			}
			sal, err := s.salvage(ctx, p.h, p.id, old[p.id].Blobs)
			if err != nil {
				return res, err
			}
			res.Unreadable = append(res.Unreadable, PackProblem{Pack: p.id.String(), Err: errs[i].Error(), Salvage: sal})
			salvaged = append(salvaged, p.id)
			continue
		}
		if _, ok := old[p.id]; !ok {
			res.NewlyFound++
		}
		keep = append(keep, out[i])
	}
	if len(salvaged) > 0 {
		// The copies and their index file are durable before the old
		// index files go.
		if err := r.Flush(ctx); err != nil {
			return res, fmt.Errorf("store salvaged blobs: %w", err)
		}
		for _, f := range r.WrittenIndexFiles() {
			ips, err := r.LoadIndexFile(ctx, f)
			if err != nil {
				return res, err
			}
			for _, ip := range ips {
				res.Packs++
				res.Blobs += len(ip.Blobs)
			}
			res.NewFiles++
		}
	}
	for _, ip := range keep {
		res.Packs++
		res.Blobs += len(ip.Blobs)
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].ID.String() < keep[j].ID.String() })
	written, err := r.SaveIndexFiles(ctx, keep, false)
	if err != nil {
		return res, err
	}
	res.NewFiles += len(written)
	for _, n := range names {
		if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.Index, Name: n}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return res, fmt.Errorf("remove old index file %s: %w", n, err)
		}
	}
	if err := r.DropIndexTable(); err != nil {
		return res, err
	}
	// No index names the damaged packs any more.
	for _, id := range salvaged {
		if err := removePack(ctx, r, id); err != nil {
			return res, err
		}
	}
	return res, nil
}
