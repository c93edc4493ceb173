package archive

import (
	"context"
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// walk lists d, handles every entry that needs no reading, hands files to
// the workers and recurses into subdirectories, depth first. It runs on one
// goroutine, which makes the order of first occurrences of hard links (and
// so the snapshot) deterministic. The tree is finished by whichever
// goroutine completes d's last child (tree.go).
func (a *archiver) walk(ctx context.Context, d *dirJob) {
	defer d.childDone(a)
	defer d.releaseDir()
	defer d.dropPrefetched()

	if d.ancestor {
		err := a.walkAncestor(ctx, d)
		if err == nil {
			return
		}
		if !errors.Is(err, errRelist) {
			a.fatal(err)
			return
		}
		// The way down changed under us: list this directory after all.
		d.ancestor, d.listing = false, nil
	}
	l, par, ok := a.list(ctx, d)
	if !ok {
		return
	}
	d.nodes = make([]snapshot.Node, len(l.names))
	d.recs = make([]scan.StatRecord, len(l.names))
	for i := range l.names {
		if ctx.Err() != nil || !a.entry(ctx, d, l, par, i) {
			return
		}
	}
}

// list returns d's listing (prefetched, or made now) and what the parent
// snapshot knows of d; false when the run is over.
func (a *archiver) list(ctx context.Context, d *dirJob) (*listing, parentDir, bool) {
	l := d.listing
	if l == nil {
		l = &listing{dir: d.dir}
		a.fill(ctx, l, d.path, d.only, d.oldTree)
	}
	d.listing = nil
	if l.listErr != nil {
		a.report(d.path, l.listErr, false)
	}
	a.prog.Dirs.Add(1)
	a.prog.Current.Store(d.path)

	var par parentDir
	if !d.oldTree.IsNull() {
		if l.oldErr != nil {
			if ctx.Err() != nil {
				return nil, par, false
			}
			// The parent is only an optimization: read everything here.
			a.report(d.path, fmt.Errorf("parent snapshot unusable here, reading all files: %w", l.oldErr), true)
		} else {
			par.tree = l.old
		}
		if l.row.err != nil {
			a.fatal(l.row.err)
			return nil, par, false
		}
		d.rowTree, d.rowRaw, d.hasRow = l.row.tree, l.row.raw, l.row.ok
		par.recs = l.recs
	}
	if a.journalScan && par.tree != nil {
		if err := a.checkRemovedLinks(ctx, d, l, par.tree, par.recs); err != nil {
			a.fatal(err)
			return nil, par, false
		}
	}
	d.listed = true
	a.schedulePrefetch(d, l)
	return l, par, true
}

// entry handles the i-th entry of d's listing: it builds its node, takes
// what is unchanged from the parent, and sends files to be read and
// subdirectories to be walked. False ends the walk (the run is over).
func (a *archiver) entry(ctx context.Context, d *dirJob, l *listing, par parentDir, i int) bool {
	name := l.names[i]
	p := joinPath(d.path, name)
	st, err := l.stats[i], l.statErrs[i]
	if err == errExcluded {
		return true
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			a.report(p, errors.New("vanished before it could be read"), true)
		} else {
			a.report(p, err, false)
		}
		return true
	}
	var v *vnode
	if d.only != nil {
		v = d.only[name]
	}
	typ := nodeType(st)
	if v != nil && !v.root && typ != snapshot.Dir {
		a.report(p, errors.New("is not a directory, but a backup root lies below it"), false)
		return true
	}
	if typ == 0 {
		a.report(p, fmt.Errorf("unknown file type %#o", st.Type()), false)
		return true
	}
	n, rec := newEntry(name, typ, st)
	on, orec := par.find(name)
	same := a.unchanged(&n, on, orec, st)
	if typ != snapshot.File {
		// The ctime covers xattrs and symlink targets; only read them
		// when it changed.
		if same {
			n.Xattrs = on.Xattrs
		} else if xs, err := d.dir.Xattrs(name); err != nil {
			a.report(p, err, true)
		} else {
			n.Xattrs = convertXattrs(xs)
		}
	}
	switch typ {
	case snapshot.File:
		return a.file(ctx, d, i, p, n, rec, on, same, st)
	case snapshot.Symlink:
		if same {
			n.Target = on.Target
		} else if n.Target, err = d.dir.Readlink(name); err != nil {
			a.report(p, err, false)
			return true
		}
	case snapshot.Dir:
		d.nodes[i], d.recs[i] = n, rec
		plan, dt := a.planSubdir(d, name, on, st, orec)
		if plan == planReuse {
			d.nodes[i].Subtree, d.nodes[i].Agg = on.Subtree, on.Agg
			a.dirsUnchanged.Add(1)
			return true
		}
		a.walkSubdir(ctx, d, i, name, p, st, on, v, plan, dt)
		return true
	}
	d.nodes[i], d.recs[i] = n, rec
	return true
}

// file handles a regular file: hard-link identity, then either the
// parent's content (unchanged) or a job for the workers (files.go).
func (a *archiver) file(ctx context.Context, d *dirJob, i int, p string, n snapshot.Node, rec scan.StatRecord, on *snapshot.Node, same bool, st fs.Stat) bool {
	if st.Nlink > 1 {
		key := state.DevIno{Dev: st.Dev, Ino: st.Ino}
		d.inodes = append(d.inodes, key)
		if a.journalScan {
			verified, covered := a.opt.Links[key]
			switch {
			case covered && !verified:
				a.linkSeen[key]++
				a.linkNlink[key] = st.Nlink
			case covered:
			case same && on.MultiLink && sameFile(&n, on) && a.stored(on.Content):
				// An unchanged inode (same ctime: no link added, removed
				// or renamed, nothing written) keeps its node, first-link
				// path included.
				d.nodes[i], d.recs[i] = *on, rec
				a.fileUnchanged(n.Size)
				return true
			default:
				// A changed one concerns its other names, which may sit
				// in directories this scan does not visit: the caller
				// adds them and scans again (this tree is discarded).
				a.needLink(key, p)
			}
			// Every name of a covered inode is met, in the order a full
			// scan meets them: its nodes are built as a full scan does.
		}
		n.MultiLink = true
		if first, ok := a.links[key]; ok {
			n.HardLink = first
		} else {
			a.links[key] = joinSnap(d.snapPath, n.Name)
		}
	}
	if same && sameFile(&n, on) && a.stored(on.Content) {
		n.Content, n.Xattrs = on.Content, on.Xattrs
		d.nodes[i], d.recs[i] = n, rec
		a.fileUnchanged(n.Size)
		return true
	}
	if on != nil && on.Type == snapshot.File {
		a.filesChanged.Add(1)
	} else {
		a.filesNew.Add(1)
	}
	d.nodes[i], d.recs[i] = n, rec
	d.pending.Add(1)
	d.dirRefs.Add(1)
	select {
	case a.jobs <- fileJob{dir: d, idx: i, st: st}:
		return true
	case <-ctx.Done():
		d.nodes[i].Type = 0
		d.releaseDir()
		d.pending.Add(-1)
		return false
	}
}

// fileUnchanged counts a file taken from the parent without reading it.
func (a *archiver) fileUnchanged(size uint64) {
	a.filesUnchanged.Add(1)
	a.prog.Files.Add(1)
	a.prog.Bytes.Add(size)
}

func (a *archiver) walkSubdir(ctx context.Context, d *dirJob, i int, name, p string, st fs.Stat, on *snapshot.Node, v *vnode, plan subdirPlan, dt *dirtyNode) {
	sub := &dirJob{path: p, snapPath: joinSnap(d.snapPath, name), parent: d, idx: i, dev: d.dev,
		journal: plan == planList || plan == planAncestor, dirty: dt, ancestor: plan == planAncestor}
	if on != nil && on.Type == snapshot.Dir {
		sub.oldTree = on.Subtree
		sub.wasInOldTr = true
	}
	if v != nil && !v.root {
		sub.only = v.children
	}
	if v != nil && v.root {
		sub.dev = st.Dev
	}
	d.pending.Add(1)
	sub.pending.Store(1)
	if d.only == nil && a.opt.OneFileSystem && st.Dev != d.dev {
		// A mount point: keep the directory itself, not what is mounted.
		sub.childDone(a)
		return
	}
	var dir *fs.Dir
	var err error
	if pre := d.prefetched[name]; pre != nil {
		delete(d.prefetched, name)
		<-pre.done
		dir, err = pre.dir, pre.openErr
		sub.listing = pre
	} else {
		dir, err = d.dir.OpenDir(name)
	}
	if err != nil {
		a.report(p, err, false)
		sub.childDone(a)
		return
	}
	sub.dir = dir
	sub.dirRefs.Store(1)
	a.walk(ctx, sub)
}
