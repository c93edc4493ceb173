package repair

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
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
	// stored.
	Forget bool
}

// SnapshotsResult says what RepairSnapshots found and did.
type SnapshotsResult struct {
	Snapshots int    `json:"snapshots"`
	Damaged   int    `json:"damaged"`
	Losses    []Loss `json:"losses"`
	// Repaired maps each damaged snapshot to its repaired copy.
	Repaired  map[string]string `json:"repaired,omitempty"`
	Forgotten int               `json:"forgotten"`
	// Unreadable snapshot records are left alone and named here.
	Unreadable []string `json:"unreadable,omitempty"`
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
	r      *repo.Repository
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
// removed after their copies are stored. The caller holds an exclusive
// lock.
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
	ids, err := snapshot.IDs(ctx, r)
	if err != nil {
		return res, err
	}
	type fix struct {
		sn *snapshot.Snapshot
		ft *fixedTree
	}
	var fixes []fix
	for _, id := range ids {
		sn, err := snapshot.Load(ctx, r, id)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.Unreadable = append(res.Unreadable, id.String())
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
	if opt.DryRun || len(fixes) == 0 {
		return res, nil
	}
	if err := r.Flush(ctx); err != nil {
		return res, fmt.Errorf("store repaired trees: %w", err)
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
			return res, fmt.Errorf("save repaired copy of snapshot %s: %w", orig.Short(), err)
		}
		res.Repaired[orig.String()] = sn.ID.String()
		if opt.Forget {
			if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.Snapshot, Name: orig.String()}); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return res, fmt.Errorf("forget damaged snapshot %s: %w", orig.Short(), err)
			}
			res.Forgotten++
		}
	}
	return res, nil
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

func (rp *repairer) fix(ctx context.Context, id blob.ID) (*fixedTree, error) {
	lost := func(what string) (*fixedTree, error) {
		return &fixedTree{id: rp.empty, changed: true, losses: []Loss{{What: what}}}, rp.save(ctx, &snapshot.Tree{})
	}
	if !rp.available(id, blob.Tree) {
		return lost(fmt.Sprintf("directory contents lost (tree %s is not in the repository)", id.Short()))
	}
	t, err := snapshot.LoadTree(ctx, rp.r, id)
	if err != nil {
		if ctx.Err() != nil || !(errors.Is(err, repo.ErrCorrupt) || errors.Is(err, snapshot.ErrInvalidTree) || errors.Is(err, backend.ErrNotFound)) {
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
