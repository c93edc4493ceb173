package archive

import (
	"context"
	"fmt"
	"sort"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// listing is everything the walker needs to process one directory: its
// entries with their lstat results, the parent snapshot's tree for it and
// the stat cache row. Prefetchers fill listings of directories the walker
// will reach soon, so on a mostly unchanged tree the system calls, tree
// decoding and database lookups run on all cores while the walker itself
// stays single-threaded and deterministic.
type listing struct {
	dir      *fs.Dir // the opened directory, nil if it could not be opened
	openErr  error
	names    []string
	stats    []fs.Stat
	statErrs []error
	listErr  error

	old    *snapshot.Tree
	oldErr error
	recs   []scan.StatRecord
	row    statRow

	done chan struct{}
}

type statRow struct {
	tree blob.ID
	raw  []byte
	ok   bool
	err  error
}

// prefetchTask asks for the listing of name below the directory parent.
type prefetchTask struct {
	parent  *dirJob
	name    string
	oldTree blob.ID
	out     *listing
}

func (a *archiver) prefetcher(ctx context.Context) {
	for t := range a.prefetch {
		if ctx.Err() == nil {
			t.out.dir, t.out.openErr = t.parent.dir.OpenDir(t.name)
			if t.out.openErr == nil {
				a.fill(ctx, t.out, joinPath(t.parent.path, t.name), nil, t.oldTree)
			}
		} else {
			t.out.openErr = ctx.Err()
		}
		t.parent.releaseDir()
		close(t.out.done)
	}
}

// fill lists the open directory l.dir (or takes the names given for the
// levels above the roots) and loads what the parent snapshot knows of it.
func (a *archiver) fill(ctx context.Context, l *listing, path string, only map[string]*vnode, oldTree blob.ID) {
	if only != nil {
		for n := range only {
			l.names = append(l.names, n)
		}
		sort.Strings(l.names)
	} else {
		l.names, l.listErr = l.dir.Names()
	}
	l.stats = make([]fs.Stat, len(l.names))
	l.statErrs = make([]error, len(l.names))
	for i, name := range l.names {
		if only == nil && a.opt.Excludes.Excluded(joinPath(path, name), name) {
			l.statErrs[i] = errExcluded
			continue
		}
		l.stats[i], l.statErrs[i] = l.dir.Lstat(name)
	}
	a.fillOld(ctx, l, path, oldTree)
}

// fillOld loads what the parent snapshot and the stat cache know of a
// directory.
func (a *archiver) fillOld(ctx context.Context, l *listing, path string, oldTree blob.ID) {
	if oldTree.IsNull() {
		return
	}
	l.old, l.oldErr = snapshot.LoadTree(ctx, a.repo, oldTree)
	if a.opt.Stats != nil {
		r := &l.row
		r.tree, r.raw, r.ok, r.err = a.opt.Stats.DirStats(a.opt.StatSet, path)
		if r.err == nil && r.ok && r.tree == oldTree {
			if recs, err := scan.DecodeStatRecords(r.raw); err == nil {
				l.recs = recs
			}
		}
	}
}

var errExcluded = fmt.Errorf("excluded")

// schedulePrefetch queues listings for the subdirectories of d that the
// walker will enter, as far as the queue has room; the rest are listed by
// the walker itself.
func (a *archiver) schedulePrefetch(d *dirJob, l *listing) {
	if d.only != nil {
		return
	}
	for i, name := range l.names {
		st := l.stats[i]
		if l.statErrs[i] != nil || !st.IsDir() || (a.opt.OneFileSystem && st.Dev != d.dev) {
			continue
		}
		var oldTree blob.ID
		var on *snapshot.Node
		if l.old != nil {
			if on = l.old.Find(name); on != nil && on.Type == snapshot.Dir {
				oldTree = on.Subtree
			}
		}
		if plan, _ := a.planSubdir(d, name, on, st, scan.FindStatRecord(l.recs, name)); plan == planReuse || plan == planAncestor {
			continue // not listed: nothing to prefetch
		}
		out := &listing{done: make(chan struct{})}
		d.dirRefs.Add(1)
		select {
		case a.prefetch <- prefetchTask{parent: d, name: name, oldTree: oldTree, out: out}:
			if d.prefetched == nil {
				d.prefetched = map[string]*listing{}
			}
			d.prefetched[name] = out
		default:
			d.dirRefs.Add(-1)
			return
		}
	}
}

// dropPrefetched closes directories prefetched but never walked (the run
// was cancelled).
func (d *dirJob) dropPrefetched() {
	for name, l := range d.prefetched {
		<-l.done
		if l.dir != nil {
			l.dir.Close()
		}
		delete(d.prefetched, name)
	}
}
