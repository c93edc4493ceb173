package repair

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/cache"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// Loss is one entry a repaired snapshot no longer holds.
type Loss struct {
	Snapshot string `json:"snapshot"`
	Path     string `json:"path"`
	What     string `json:"what"`
}

// SnapshotsOptions tune RepairSnapshots.
type SnapshotsOptions struct {
	// DryRun only reports what would be lost.
	DryRun bool
	// Forget removes each damaged snapshot once its repaired copy is
	// stored, and every snapshot record that is proven damaged (see
	// UnreadableRecord.Damaged): nothing can be repaired from it.
	Forget bool
}

// UnreadableRecord is a snapshot record that could not be read.
type UnreadableRecord struct {
	ID    string `json:"id"`
	Size  int64  `json:"size"`
	Error string `json:"error"`
	// Damaged is set when the stored bytes are proven damaged: they do not
	// match their name or fail authentication. A failed read may pass,
	// and a record that authenticates but does not decode was written
	// that way (perhaps by a newer version): Forget never removes those.
	Damaged bool `json:"damaged"`
	// Removed is set once Forget removed the record.
	Removed bool `json:"removed"`
}

// SnapshotsResult says what RepairSnapshots found and did.
type SnapshotsResult struct {
	Snapshots int    `json:"snapshots"`
	Damaged   int    `json:"damaged"`
	Losses    []Loss `json:"losses"`
	// Repaired maps each damaged snapshot to its repaired copy.
	Repaired  map[string]string `json:"repaired,omitempty"`
	Forgotten int               `json:"forgotten"`
	// Unreadable names the snapshot records that could not be read; with
	// Forget the damaged ones are removed.
	Unreadable []UnreadableRecord `json:"unreadable,omitempty"`
}

// RepairedTag marks snapshots written by RepairSnapshots.
const RepairedTag = "repaired"

// fixedTree is the outcome of repairing one tree.
type fixedTree struct {
	id      blob.ID
	changed bool
	agg     snapshot.Aggregates
	losses  []Loss // paths relative to the tree
}

type repairer struct {
	r *repo.Repository
	// treeBE reads trees from the repository itself, through a temporary
	// cache: a cached intact copy must not hide a damaged stored tree.
	treeBE backend.Backend
	opt    SnapshotsOptions
	stored map[blob.ID]bool // packs in the repository
	trees  map[blob.ID]*fixedTree
	empty  blob.ID
}

// RepairSnapshots finds the snapshots that reference data the repository
// no longer has (not in the index, or in a pack that is gone) and writes a
// repaired copy of each: files missing any content are left out, and a
// directory whose tree is lost becomes empty, every one of them named in
// the result. Old snapshots are never edited; with Forget they are
// removed after their copies are stored, and so are the snapshot records
// proven damaged. The caller holds an exclusive lock.
func RepairSnapshots(ctx context.Context, r *repo.Repository, opt SnapshotsOptions) (SnapshotsResult, error) {
	res := SnapshotsResult{Repaired: map[string]string{}, Losses: []Loss{}}
	rp := &repairer{r: r, opt: opt, stored: map[blob.ID]bool{}, trees: map[blob.ID]*fixedTree{}}
	for _, ns := range []backend.FileType{backend.Data, backend.Tree} {
		err := r.Raw().List(ctx, ns, func(name string, _ int64) error {
			if id, err := blob.ParseID(name); err == nil {
				rp.stored[id] = true
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("list %s packs: %w", ns, err)
		}
	}
	rp.empty = r.Key().ID((&snapshot.Tree{}).Encode())
	tmp, err := os.MkdirTemp("", "tidemark-repair-")
	if err != nil {
		return res, fmt.Errorf("temporary tree cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if rp.treeBE, err = cache.Wrap(r.Raw(), tmp); err != nil {
		return res, err
	}
	recs, err := snapshot.Records(ctx, r)
	if err != nil {
		return res, err
	}
	var fixes []fix
	for _, rec := range recs {
		id := rec.ID
		sn, err := snapshot.LoadFromRepository(ctx, r, id)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if errors.Is(err, backend.ErrNotFound) {
				continue // removed since it was listed
			}
			u := UnreadableRecord{ID: id.String(), Size: rec.Size, Error: err.Error()}
			var ue *snapshot.UnreadableError
			if errors.As(err, &ue) {
				u.Error, u.Damaged = ue.Err.Error(), ue.Damaged()
			}
			res.Unreadable = append(res.Unreadable, u)
			continue
		}
		res.Snapshots++
		ft, err := rp.tree(ctx, sn.Tree)
		if err != nil {
			return res, fmt.Errorf("snapshot %s: %w", id.Short(), err)
		}
		if !ft.changed {
			continue
		}
		res.Damaged++
		for _, l := range ft.losses {
			l.Snapshot = id.String()
			res.Losses = append(res.Losses, l)
		}
		fixes = append(fixes, fix{sn, ft})
	}
	if opt.DryRun {
		return res, nil
	}
	if len(fixes) > 0 {
		if err := rp.commit(ctx, fixes, &res); err != nil {
			return res, err
		}
	}
	if opt.Forget {
		// Last, after every write: a damaged record holds nothing to
		// repair from, and it keeps prune from knowing what is used.
		for i := range res.Unreadable {
			u := &res.Unreadable[i]
			if !u.Damaged {
				continue
			}
			if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.Snapshot, Name: u.ID}); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return res, fmt.Errorf("remove damaged snapshot record %s: %w", u.ID, err)
			}
			u.Removed = true
		}
	}
	return res, nil
}

// fix is a damaged snapshot and its repaired tree.
type fix struct {
	sn *snapshot.Snapshot
	ft *fixedTree
}

// commit stores the repaired trees and a repaired copy of each snapshot,
// removing the originals with Forget.
func (rp *repairer) commit(ctx context.Context, fixes []fix, res *SnapshotsResult) error {
	r, opt := rp.r, rp.opt
	if err := r.Flush(ctx); err != nil {
		return fmt.Errorf("store repaired trees: %w", err)
	}
	for _, f := range fixes {
		sn := *f.sn
		orig := f.sn.ID
		sn.Tree, sn.Totals = f.ft.id, f.ft.agg
		sn.Original = &orig
		if !slices.Contains(sn.Tags, RepairedTag) {
			sn.Tags = append(slices.Clone(sn.Tags), RepairedTag)
		}
		if err := snapshot.Save(ctx, r, &sn); err != nil {
			return fmt.Errorf("save repaired copy of snapshot %s: %w", orig.Short(), err)
		}
		res.Repaired[orig.String()] = sn.ID.String()
		if opt.Forget {
			if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.Snapshot, Name: orig.String()}); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return fmt.Errorf("forget damaged snapshot %s: %w", orig.Short(), err)
			}
			res.Forgotten++
		}
	}
	return nil
}

// available reports whether a blob can be read: indexed, in a stored pack.
func (rp *repairer) available(id blob.ID, t blob.Type) bool {
	loc, ok := rp.r.Index().Lookup(id)
	return ok && loc.Type == t && rp.stored[loc.Pack]
}

// tree repairs tree id (memoized: snapshots share subtrees).
func (rp *repairer) tree(ctx context.Context, id blob.ID) (*fixedTree, error) {
	if ft, ok := rp.trees[id]; ok {
		return ft, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ft, err := rp.fix(ctx, id)
	if err != nil {
		return nil, err
	}
	rp.trees[id] = ft
	return ft, nil
}

// loadTree reads tree id from the repository.
func (rp *repairer) loadTree(ctx context.Context, id blob.ID) (*snapshot.Tree, error) {
	plain, err := rp.r.LoadBlobVia(ctx, rp.treeBE, blob.Tree, id)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Short(), err)
	}
	return snapshot.DecodeTree(plain)
}

func (rp *repairer) fix(ctx context.Context, id blob.ID) (*fixedTree, error) {
	lost := func(what string) (*fixedTree, error) {
		return &fixedTree{id: rp.empty, changed: true, losses: []Loss{{What: what}}}, rp.save(ctx, &snapshot.Tree{})
	}
	if !rp.available(id, blob.Tree) {
		return lost(fmt.Sprintf("directory contents lost (tree %s is not in the repository)", id.Short()))
	}
	t, err := rp.loadTree(ctx, id)
	if err != nil {
		if ctx.Err() != nil || !(errors.Is(err, repo.ErrCorrupt) || errors.Is(err, snapshot.ErrInvalidTree) || errors.Is(err, backend.ErrNotFound) ||
			errors.Is(err, backend.ErrShortObject) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil, err
		}
		return lost(fmt.Sprintf("directory contents lost: %v", err))
	}
	out := &fixedTree{id: id}
	kept := t.Nodes[:0:0]
	for i := range t.Nodes {
		n := t.Nodes[i]
		switch n.Type {
		case snapshot.File:
			missing := 0
			for _, c := range n.Content {
				if !rp.available(c, blob.Data) {
					missing++
				}
			}
			if missing > 0 {
				out.changed = true
				out.losses = append(out.losses, Loss{Path: n.Name,
					What: fmt.Sprintf("file left out: %d of its %d content chunks are lost", missing, len(n.Content))})
				continue
			}
		case snapshot.Dir:
			sub, err := rp.tree(ctx, n.Subtree)
			if err != nil {
				return nil, err
			}
			if sub.changed {
				out.changed = true
				n.Subtree, n.Agg = sub.id, sub.agg
				for _, l := range sub.losses {
					p := n.Name
					if l.Path != "" {
						p += "/" + l.Path
					}
					out.losses = append(out.losses, Loss{Path: p, What: l.What})
				}
			}
		}
		kept = append(kept, n)
	}
	// Entries hard-linked to a file left out share its content, so they
	// are left out too; restore makes the first remaining entry of a link
	// group the file the others link to.
	fixed := &snapshot.Tree{Nodes: kept}
	out.agg = fixed.Totals()
	if !out.changed {
		return out, nil
	}
	if out.id, err = rp.saveID(ctx, fixed); err != nil {
		return nil, err
	}
	return out, nil
}

func (rp *repairer) save(ctx context.Context, t *snapshot.Tree) error {
	_, err := rp.saveID(ctx, t)
	return err
}

func (rp *repairer) saveID(ctx context.Context, t *snapshot.Tree) (blob.ID, error) {
	if rp.opt.DryRun {
		return rp.r.Key().ID(t.Encode()), nil
	}
	return snapshot.SaveTree(ctx, rp.r, t)
}
