package archive

import (
	"bytes"
	"fmt"

	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// Finishing trees: a directory's tree is saved once its listing and every
// child (file job or subdirectory) are done, bottom-up.

// releaseDir drops one reference to the open directory; the last one
// closes it.
func (d *dirJob) releaseDir() {
	if d.dir != nil && d.dirRefs.Add(-1) == 0 {
		d.dir.Close()
	}
}

// childDone records that one child (or the listing) finished; the last one
// saves the directory's tree.
func (d *dirJob) childDone(a *archiver) {
	if d.pending.Add(-1) != 0 {
		return
	}
	if a.ctx.Err() != nil {
		return // the run failed; its trees are not needed
	}
	a.finish(d)
}

func (a *archiver) finish(d *dirJob) {
	nodes := d.nodes[:0]
	recs := d.recs[:0]
	for i := range d.nodes {
		if d.nodes[i].Type != 0 {
			nodes = append(nodes, d.nodes[i])
			recs = append(recs, d.recs[i])
		}
	}
	tree := &snapshot.Tree{Nodes: nodes}
	id, err := snapshot.SaveTree(a.storeCtx, a.repo, tree)
	if err != nil {
		a.fatal(fmt.Errorf("save tree of %s: %w", d.path, err))
		return
	}
	agg := tree.Totals()
	switch {
	case !d.wasInOldTr:
		a.dirsNew.Add(1)
	case id == d.oldTree:
		a.dirsUnchanged.Add(1)
	default:
		a.dirsChanged.Add(1)
	}
	raw := scan.EncodeStatRecords(recs)
	if d.recHoles {
		a.statHoles.Store(true)
	} else if !d.hasRow || d.rowTree != id || !bytes.Equal(d.rowRaw, raw) {
		a.statUpdate(state.DirStatsUpdate{Path: d.path, Tree: id, Entries: raw})
	}
	if d.listed && (a.journalScan || len(d.inodes) > 0) {
		a.mu.Lock()
		if a.inodes == nil {
			a.inodes = map[string][]state.DevIno{}
		}
		a.inodes[d.path] = d.inodes
		a.mu.Unlock()
	}
	d.nodes, d.recs, d.rowRaw, d.inodes = nil, nil, nil, nil
	if d.onDone != nil {
		d.onDone(id, agg)
		return
	}
	pn := &d.parent.nodes[d.idx]
	pn.Subtree, pn.Agg = id, agg
	d.parent.childDone(a)
}

// statBatch is how many stat cache rows are passed to Options.StatSink at
// once.
const statBatch = 512

// statUpdate collects a directory's new stat cache row and passes full
// batches on, so that memory does not grow with the number of directories.
// A sink that fails (a full cache disk) is not used again: the rows stay
// in memory, as without a sink, for the caller to write once the snapshot
// is saved. The backup itself must not fail for its cache.
func (a *archiver) statUpdate(u state.DirStatsUpdate) {
	a.mu.Lock()
	a.updates = append(a.updates, u)
	var batch []state.DirStatsUpdate
	if a.opt.StatSink != nil && !a.sinkFailed && len(a.updates) >= statBatch {
		batch, a.updates = a.updates, nil
	}
	a.mu.Unlock()
	if batch != nil {
		if err := a.opt.StatSink(batch); err != nil {
			a.mu.Lock()
			a.sinkFailed = true
			a.updates = append(batch, a.updates...)
			a.mu.Unlock()
		}
	}
}
