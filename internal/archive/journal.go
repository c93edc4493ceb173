package archive

import (
	"context"
	"errors"
	"path"
	"sort"
	"strings"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// dirtyNode is a directory on the way to (or one of) the directories a
// change journal reported. Only these are visited in a journal scan; every
// other subtree is taken from the parent snapshot by ID.
type dirtyNode struct {
	// self: the directory itself must be listed again.
	self bool
	// all: everything below it must be scanned (nothing reused by name).
	all      bool
	children map[string]*dirtyNode
}

// buildDirty turns the reported directories into a trie rooted at "/";
// trees are directories to scan whole.
func buildDirty(dirs, trees []string) *dirtyNode {
	root := &dirtyNode{}
	for _, t := range trees {
		root.add(t).all = true
	}
	for _, d := range dirs {
		root.add(d).self = true
	}
	return root
}

// add returns the node for the absolute path d, creating the way to it.
func (n *dirtyNode) add(d string) *dirtyNode {
	d = path.Clean(d)
	if d == "/" {
		return n
	}
	for _, part := range strings.Split(strings.TrimPrefix(d, "/"), "/") {
		if n.children == nil {
			n.children = map[string]*dirtyNode{}
		}
		c := n.children[part]
		if c == nil {
			c = &dirtyNode{}
			n.children[part] = c
		}
		n = c
	}
	return n
}

func (n *dirtyNode) child(name string) *dirtyNode {
	if n == nil {
		return nil
	}
	return n.children[name]
}

// subdirPlan decides, in a journal scan, how to treat subdirectory name of
// d whose parent-snapshot node is on: reuse it whole, list it, or only
// descend towards reported directories below it.
type subdirPlan int

const (
	planScanAll  subdirPlan = iota // not a journal scan, or new here: scan everything below
	planReuse                      // untouched: keep the parent's subtree
	planList                       // reported: list it, reuse untouched subdirectories
	planAncestor                   // above reported directories: keep its entries, descend
)

func (a *archiver) planSubdir(d *dirJob, name string, on *snapshot.Node, st fs.Stat, rec *scan.StatRecord) (subdirPlan, *dirtyNode) {
	if !d.journal {
		return planScanAll, nil
	}
	if on == nil || on.Type != snapshot.Dir {
		return planScanAll, nil // new or replaced: nothing to reuse
	}
	// The journal reports the directories in which something happened, so
	// a directory moved here whole, or replaced by another of the same name,
	// shows up only as a change in this directory. Reuse a subtree only if
	// it is provably the same directory object, unchanged itself.
	if rec == nil || rec.CTime == 0 || rec.Ino != st.Ino || rec.Dev != st.Dev {
		return planScanAll, nil
	}
	dt := d.dirty.child(name)
	if dt != nil && dt.all {
		return planScanAll, nil
	}
	if rec.CTime != st.CTime {
		// Its metadata or entries changed: list it again.
		if dt == nil {
			dt = &dirtyNode{self: true}
		}
		return planList, dt
	}
	switch {
	case dt == nil:
		return planReuse, nil
	case dt.self:
		return planList, dt
	}
	return planAncestor, dt
}

// errRelist asks for a directory to be listed after all because what the
// journal implied does not hold (a directory on the way vanished or changed
// type while we looked).
var errRelist = errors.New("relist")

// walkAncestor rebuilds a directory that was not reported itself but has
// reported directories below it: its entries come from the parent
// snapshot, except the subdirectories on the way down, which are stat'ed
// again (their mtime changes with their contents) and descended into.
func (a *archiver) walkAncestor(ctx context.Context, d *dirJob) error {
	l := d.listing
	if l == nil {
		l = &listing{dir: d.dir}
		a.fillOld(ctx, l, d.path, d.oldTree)
	}
	if l.oldErr != nil {
		return errRelist
	}
	if l.row.err != nil {
		return l.row.err
	}
	names := make([]string, 0, len(d.dirty.children))
	for n := range d.dirty.children {
		names = append(names, n)
	}
	sort.Strings(names)
	// Check everything first, so a fallback to listing starts clean.
	type step struct {
		idx int
		st  fs.Stat
	}
	var steps []step
	for _, name := range names {
		idx := sort.Search(len(l.old.Nodes), func(i int) bool { return l.old.Nodes[i].Name >= name })
		if idx == len(l.old.Nodes) || l.old.Nodes[idx].Name != name || l.old.Nodes[idx].Type != snapshot.Dir {
			return errRelist // reported below something that was not a directory
		}
		st, err := d.dir.Lstat(name)
		if err != nil || !st.IsDir() {
			return errRelist
		}
		steps = append(steps, step{idx, st})
	}
	d.listing = nil
	d.rowTree, d.rowRaw, d.hasRow = l.row.tree, l.row.raw, l.row.ok
	d.nodes = append([]snapshot.Node(nil), l.old.Nodes...)
	d.recs = make([]scan.StatRecord, len(d.nodes))
	// Without a valid stat row the records are unknown; recHoles marks the
	// row as unusable so it is not written.
	if l.recs != nil {
		for i := range d.nodes {
			if r := scan.FindStatRecord(l.recs, d.nodes[i].Name); r != nil {
				d.recs[i] = *r
			} else {
				d.recHoles = true
			}
		}
	} else {
		d.recHoles = true
	}
	a.prog.Dirs.Add(1)
	for _, s := range steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n := &d.nodes[s.idx]
		old := *n
		p := joinPath(d.path, n.Name)
		rec := &d.recs[s.idx]
		oldRec := *rec
		if !recordMatches(rec, s.st) {
			xs, err := d.dir.Xattrs(n.Name)
			if err != nil {
				a.report(p, err, true)
			}
			n.Xattrs = convertXattrs(xs)
		}
		applyStat(n, rec, s.st)
		var prev *scan.StatRecord
		if oldRec.Name != "" {
			prev = &oldRec
		}
		plan, dt := a.planSubdir(d, n.Name, &old, s.st, prev)
		var v *vnode
		if d.only != nil {
			v = d.only[n.Name]
		}
		a.walkSubdir(ctx, d, s.idx, n.Name, p, s.st, &old, v, plan, dt)
	}
	return nil
}

// NeedFullScanError ends a journal scan that met something it cannot
// handle safely with the directories it was given; the caller falls back to
// a full scan and records the reason.
type NeedFullScanError struct{ Reason string }

func (e *NeedFullScanError) Error() string { return "journal scan not possible: " + e.Reason }

// checkRemovedLinks ends a journal scan when a listed directory held
// hard-linked files, directly or in a subdirectory that is now gone or
// replaced: the other links of those inodes sit in directories the scan
// does not visit, whose nodes (link flags, first-link paths) would go
// stale.
func (a *archiver) checkRemovedLinks(ctx context.Context, d *dirJob, l *listing, old *snapshot.Tree, oldRecs []scan.StatRecord) error {
	for i := range old.Nodes {
		on := &old.Nodes[i]
		p := joinPath(d.path, on.Name)
		k := sort.SearchStrings(l.names, on.Name)
		present := k < len(l.names) && l.names[k] == on.Name && l.statErrs[k] == nil
		if on.MultiLink {
			// Removed or replaced links change the others' nodes.
			rec := scan.FindStatRecord(oldRecs, on.Name)
			if !present || !l.stats[k].IsRegular() || !recordMatches(rec, l.stats[k]) {
				return &NeedFullScanError{Reason: "hard-linked file changed: " + p}
			}
			continue
		}
		if on.Type != snapshot.Dir {
			continue
		}
		gone := !present || !l.stats[k].IsDir()
		if !gone {
			if plan, _ := a.planSubdir(d, on.Name, on, l.stats[k], scan.FindStatRecord(oldRecs, on.Name)); plan != planScanAll {
				continue
			}
		}
		has, err := a.linksBelow(ctx, on.Subtree)
		if err != nil {
			return err
		}
		if has {
			return &NeedFullScanError{Reason: "hard-linked files in a removed or replaced directory: " + p}
		}
	}
	return nil
}

// linksBelow reports whether a subtree of the parent snapshot holds
// hard-linked files. Its cost follows the size of what was removed.
func (a *archiver) linksBelow(ctx context.Context, id blob.ID) (bool, error) {
	t, err := snapshot.LoadTree(ctx, a.repo, id)
	if err != nil {
		return false, err
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if n.MultiLink {
			return true, nil
		}
		if n.Type == snapshot.Dir {
			if has, err := a.linksBelow(ctx, n.Subtree); has || err != nil {
				return has, err
			}
		}
	}
	return false, nil
}
